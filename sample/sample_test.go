package sample

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// statter says which paths exist; err, when set, is its answer for the rest.
type statter struct {
	files map[string]bool
	err   error
}

func (s statter) Stat(p string) (cdccleaner.File, error) {
	if s.files[p] {
		return cdccleaner.File{Path: p}, nil
	}
	if s.err != nil {
		return cdccleaner.File{}, s.err
	}
	return cdccleaner.File{}, fs.ErrNotExist
}

func TestProbe(t *testing.T) {
	text := cdccleaner.Column{Storage: "media", Schema: "public", Table: "blob", Name: "key", Type: cdccleaner.ColumnType{Kind: cdccleaner.KindText}}
	array := text
	array.Type.Kind = cdccleaner.KindArray
	keys := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("k%02d", i))
		}
		return out
	}
	// The Active Storage Disk layout: a key's file is at ab/cd/abcd...
	nested := map[string]bool{}
	for _, k := range keys(20) {
		nested[k[:1]+"/"+k[1:2]+"/"+k] = true
	}
	flat := map[string]bool{}
	for _, k := range keys(20) {
		flat[k] = true
	}
	tests := []struct {
		name                   string
		col                    cdccleaner.Column
		vals                   []string
		files                  map[string]bool
		paths, present, invald int
		judged, wrong          bool
	}{
		{name: "values are the paths", col: text, vals: keys(20), files: flat, paths: 20, present: 20, judged: true},
		{name: "a few files missing is normal", col: text, vals: keys(20), files: without(flat, "k00", "k01", "k02"), paths: 20, present: 17, judged: true},
		{name: "files stored under another layout", col: text, vals: keys(20), files: nested, paths: 20, present: 0, judged: true, wrong: true},
		{name: "too few values to judge", col: text, vals: keys(4), files: nested, paths: 4, present: 0},
		{name: "URLs name no file as they are", col: text, vals: []string{"https://cdn.example.com/a.jpg", "/media/b.jpg", "k00"}, files: flat, paths: 1, present: 1, invald: 2},
		{name: "array elements are paths", col: array, vals: []string{"{k00,k01}", "{k02,k03,k04}"}, files: flat, paths: 5, present: 5, judged: true},
		{name: "a path named twice is looked up once", col: text, vals: []string{"k00", "k00", "k01"}, files: flat, paths: 2, present: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Probe(context.Background(), statter{files: tt.files}, tt.col, tt.vals)
			if err != nil {
				t.Fatal(err)
			}
			if r.Paths != tt.paths || r.Present != tt.present || r.Invalid != tt.invald || r.Judged() != tt.judged || r.Wrong() != tt.wrong {
				t.Fatalf("paths %d, present %d, invalid %d, judged %v, wrong %v; want %d, %d, %d, %v, %v",
					r.Paths, r.Present, r.Invalid, r.Judged(), r.Wrong(), tt.paths, tt.present, tt.invald, tt.judged, tt.wrong)
			}
			if tt.present < tt.paths && len(r.Absent) == 0 {
				t.Error("no example of an absent path")
			}
		})
	}
}

// TestProbeNoPathsAndDoubtful: values that name no path at all (a
// json_path that finds nothing), and a few paths that all fail to exist,
// are flagged although too few paths were looked up to judge.
func TestProbeNoPathsAndDoubtful(t *testing.T) {
	doc := cdccleaner.Column{Type: cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSONB},
		JSONPath: cdccleaner.JSONPath{{Key: "files"}, {Each: true}, {Key: "path"}}}
	var docs []string
	for i := range 10 {
		docs = append(docs, fmt.Sprintf(`{"attachments":[{"url":"k%02d"}]}`, i)) // nothing at files[*].path
	}
	r, err := Probe(context.Background(), statter{files: map[string]bool{"k00": true}}, doc, docs)
	if err != nil {
		t.Fatal(err)
	}
	if !r.NoPaths() || r.Wrong() || r.Judged() {
		t.Errorf("documents with nothing at the json_path: NoPaths %v, Wrong %v, Judged %v; want true, false, false", r.NoPaths(), r.Wrong(), r.Judged())
	}
	text := cdccleaner.Column{Type: cdccleaner.ColumnType{Kind: cdccleaner.KindText}}
	r, err = Probe(context.Background(), statter{}, text, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Doubtful() || r.Wrong() {
		t.Errorf("3 paths, none there: Doubtful %v, Wrong %v; want true, false", r.Doubtful(), r.Wrong())
	}
	r, _ = Probe(context.Background(), statter{files: map[string]bool{"a": true}}, text, []string{"a", "b", "c"})
	if r.Doubtful() {
		t.Error("3 paths, one there: Doubtful")
	}
}

// TestProbeLookupError: a lookup that fails is an error, never an absent file.
func TestProbeLookupError(t *testing.T) {
	col := cdccleaner.Column{Type: cdccleaner.ColumnType{Kind: cdccleaner.KindText}}
	_, err := Probe(context.Background(), statter{err: errors.New("403 Forbidden")}, col, []string{"a", "b"})
	if err == nil {
		t.Fatal("a failed lookup was taken for an answer")
	}
}

func without(m map[string]bool, keys ...string) map[string]bool {
	out := map[string]bool{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
