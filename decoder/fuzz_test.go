package decoder

import (
	"testing"
)

// FuzzDecode feeds arbitrary bytes to a decoder that has seen the captured
// stream's relation: no input may panic, and every candidate must name a
// configured storage.
func FuzzDecode(f *testing.F) {
	stream := readStream(f, "testdata/mixed_case_stream.txt")
	for _, msg := range stream {
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := New([]Table{
			{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"ImageFile", "big", "tags"}, Storage: "media"},
			{Schema: "Media Schema", Name: "PhotoTable", Columns: []string{"doc"}, Storage: "docs", JSONPath: "files[*].path"},
		}, Messages("media", "docs"))
		if err != nil {
			t.Fatal(err)
		}
		// Prime the relation cache and open a transaction, then decode the
		// input twice: as a message inside the transaction and as a
		// relation-changing message followed by a delete.
		for _, msg := range stream[:2] { // Begin, Relation
			if _, err := d.Decode(msg); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			ev, err := d.Decode(data)
			if err != nil {
				continue
			}
			for _, f := range ev.Bad {
				if f.Reason != ReasonBadMessage || f.Detail == "" {
					t.Fatalf("failure %+v", f)
				}
			}
			for _, c := range ev.Candidates {
				if c.Storage != "media" && c.Storage != "docs" {
					t.Fatalf("candidate with storage %q", c.Storage)
				}
				if c.Path == "" {
					t.Fatal("candidate with an empty path")
				}
			}
		}
	})
}
