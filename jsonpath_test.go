package cdccleaner

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseJSONPath(t *testing.T) {
	tests := []struct {
		in   string
		want JSONPath
		err  string
	}{
		{in: "cover", want: JSONPath{{Key: "cover"}}},
		{in: "files[*].path", want: JSONPath{{Key: "files"}, {Each: true}, {Key: "path"}}},
		{in: "gallery[*].sizes[*].path", want: JSONPath{{Key: "gallery"}, {Each: true}, {Key: "sizes"}, {Each: true}, {Key: "path"}}},
		{in: "[*]", want: JSONPath{{Each: true}}},
		{in: "a[*][*]", want: JSONPath{{Key: "a"}, {Each: true}, {Each: true}}},
		{in: "a.b c", want: JSONPath{{Key: "a"}, {Key: "b c"}}},
		{in: "", err: "empty path"},
		{in: ".a", err: "not a dot"},
		{in: "a.", err: "empty key"},
		{in: "a..b", err: "empty key"},
		{in: "a.[*]", err: "empty key"},
		{in: "a[0]", err: "only [*]"},
		{in: "a]", err: "unexpected ]"},
		{in: "a[*]b", err: "expected . or [*]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseJSONPath(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
			if back := got.String(); back != tt.in {
				t.Errorf("formats back as %q", back)
			}
		})
	}
}

func TestJSONPathStrings(t *testing.T) {
	doc := []byte(`{"cover":"c.jpg","files":[{"path":"a.pdf"},{"path":""},{"path":null},{"path":7},{"nope":"x"}],
		"gallery":[{"sizes":[{"path":"g1s"},{"path":"g1l"}]},{"sizes":[{"path":"g2s"}]}]}`)
	tests := []struct {
		path string
		want []string
	}{
		{"cover", []string{"c.jpg"}},
		{"files[*].path", []string{"a.pdf"}},
		{"gallery[*].sizes[*].path", []string{"g1s", "g1l", "g2s"}},
		{"missing.key", nil},
	}
	for _, tt := range tests {
		jp, err := ParseJSONPath(tt.path)
		if err != nil {
			t.Fatalf("ParseJSONPath(%q): %v", tt.path, err)
		}
		got, err := jp.Strings(doc)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, %v; want %q", tt.path, got, err, tt.want)
		}
	}
	if got, _ := JSONPath(nil).Strings([]byte(`"top.jpg"`)); !slices.Equal(got, []string{"top.jpg"}) {
		t.Errorf("empty path on a string document: %q", got)
	}
}

func TestJSONPathContainingAndSQL(t *testing.T) {
	jp, _ := ParseJSONPath("gallery[*].sizes[*].path")
	if got, want := jp.Containing(`a "b".jpg`), `{"gallery":[{"sizes":[{"path":"a \"b\".jpg"}]}]}`; got != want {
		t.Errorf("Containing = %s, want %s", got, want)
	}
	if got, want := jp.SQL(), `$."gallery"[*]."sizes"[*]."path"`; got != want {
		t.Errorf("SQL = %s, want %s", got, want)
	}
}

// TestJSONPathStringsAnyNumber: PostgreSQL's json and jsonb take numbers of
// any size and precision (jsonb keeps them as numeric), so a document with a
// number no float64 holds must still give its paths; before, it failed with
// "parse json" and the file it named was never cleaned.
func TestJSONPathStringsAnyNumber(t *testing.T) {
	digits400 := strings.Repeat("9", 400)
	tests := []struct {
		name, path, doc string
		want            []string
	}{
		{"1e400 beside the path", "path", `{"size":1e400,"path":"a.jpg"}`, []string{"a.jpg"}},
		{"-1e400 beside the path", "path", `{"size":-1e400,"path":"a.jpg"}`, []string{"a.jpg"}},
		{"1e-400 beside the path", "path", `{"size":1e-400,"path":"a.jpg"}`, []string{"a.jpg"}},
		{"400-digit integer", "path", `{"size":` + digits400 + `,"path":"a.jpg"}`, []string{"a.jpg"}},
		{"400-digit decimal as jsonb prints it", "path", `{"path": "a.jpg", "size": 1` + strings.Repeat("0", 400) + `.5}`, []string{"a.jpg"}},
		{"numbers in the array on the path", "files[*].path",
			`{"files":[1e400,{"path":"a.pdf","size":-1e400},` + digits400 + `,[1e400],{"path":1e400},{"path":"b.pdf"}]}`,
			[]string{"a.pdf", "b.pdf"}},
		{"numbers in nested arrays on the path", "gallery[*].sizes[*].path",
			`{"gallery":[{"sizes":[1e400,{"w":1e400,"path":"g1s"}]},1e-400,{"sizes":[{"path":"g2s","h":-` + digits400 + `}]}]}`,
			[]string{"g1s", "g2s"}},
		{"top-level array of strings and numbers", "[*]", `[1e400,"a.jpg",-1e400,"b.jpg"]`, []string{"a.jpg", "b.jpg"}},
		{"the document is a huge number", "path", `1e400`, nil},
		{"the leaf is a huge number", "path", `{"path":1e400}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jp, err := ParseJSONPath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := jp.Strings([]byte(tt.doc))
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestJSONPathStringsDeepNesting: PostgreSQL (15, default max_stack_depth)
// accepts json and jsonb nested 10001 levels deep, one level more than
// encoding/json's decoder allows.
func TestJSONPathStringsDeepNesting(t *testing.T) {
	const depth = 20000
	doc := `{"junk":` + strings.Repeat(`[{"a":`, depth) + `1` + strings.Repeat(`}]`, depth) + `,"path":"a.jpg"}`
	got, err := JSONPath{{Key: "path"}}.Strings([]byte(doc))
	if err != nil || !slices.Equal(got, []string{"a.jpg"}) {
		t.Fatalf("got %q, %v; want [a.jpg]", got, err)
	}
	// Deep along the path too: [*][*]...[*] to the string.
	steps := slices.Repeat(JSONPath{{Each: true}}, depth)
	doc = strings.Repeat(`[`, depth) + `"deep.jpg"` + strings.Repeat(`]`, depth)
	if got, err := steps.Strings([]byte(doc)); err != nil || !slices.Equal(got, []string{"deep.jpg"}) {
		t.Fatalf("along the path: got %q, %v; want [deep.jpg]", got, err)
	}
}

// TestJSONPathStringsOneDocument: exactly one JSON value, with nothing but
// whitespace around it, as json.Unmarshal demanded; a stream of values or
// a stray delimiter after the document is refused, never read in part.
func TestJSONPathStringsOneDocument(t *testing.T) {
	for _, doc := range []string{
		``, ` `, `{"path":"a.jpg"} {"path":"b.jpg"}`, `{"path":"a.jpg"}]`, `{"path":"a.jpg"}}`,
		`{"path":"a.jpg"},`, `"a.jpg" x`, `"a.jpg""b.jpg"`, `1 2`, `01`, `[01]`, `1e`, `-`, `[1.]`,
		`{"path":"a.jpg"`, `{"path" "a.jpg"}`, `{"path":"a.jpg",}`, `[1,]`, `[,1]`, `{1:"a.jpg"}`,
		`{"path":"a.jpg"]`, `["a.jpg"}`, `NaN`, `Infinity`, `{"path":'a.jpg'}`, "\ufeff{}",
		`{"junk":[1 2],"path":"a.jpg"}`, `{"junk":{"a" 1},"path":"a.jpg"}`, `{"path":"a.jpg","junk":[}`,
		"{\"path\":\"a\x01.jpg\"}", `{"path":"a\x.jpg"}`, `tru`, `nul`,
	} {
		t.Run(doc, func(t *testing.T) {
			if json.Valid([]byte(doc)) {
				t.Fatalf("bad test case: json.Valid accepts %q", doc)
			}
			got, err := JSONPath{{Key: "path"}}.Strings([]byte(doc))
			if err == nil {
				t.Fatalf("accepted as %q", got)
			}
			if !strings.HasPrefix(err.Error(), "parse json: ") {
				t.Errorf("error %q", err)
			}
		})
	}
	// Whitespace around the document is fine.
	got, err := JSONPath{{Key: "path"}}.Strings([]byte(" \t\r\n{\"path\" : \"a.jpg\" } \n"))
	if err != nil || !slices.Equal(got, []string{"a.jpg"}) {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestJSONPathStringsDuplicateKeys: of duplicate keys the last counts, as in
// jsonb (which keeps only the last) and as json.Unmarshal into a map did.
func TestJSONPathStringsDuplicateKeys(t *testing.T) {
	jp, _ := ParseJSONPath("files[*].path")
	doc := `{"files":[{"path":"old.jpg"}],"x":1,"files":[{"path":"a.jpg","path":"b.jpg"},{"path":"c.jpg","path":7}]}`
	got, err := jp.Strings([]byte(doc))
	if err != nil || !slices.Equal(got, []string{"b.jpg"}) {
		t.Fatalf("got %q, %v; want [b.jpg]", got, err)
	}
}

// FuzzJSONPathStrings checks Strings against encoding/json, which reads
// every document PostgreSQL writes except numbers a float64 cannot hold
// (hence UseNumber here) and nesting deeper than 10000 levels:
//
//   - a document json.Valid accepts is read, and Strings returns exactly
//     the non-empty string leaves at the path, in document order, the last
//     of duplicate keys counting (as json.Unmarshal into a map gives them);
//   - a document json.Valid refuses for anything but its depth is refused:
//     nothing is read from part of a document or from trailing data.
//
// The seeds are in testdata/fuzz/FuzzJSONPathStrings.
func FuzzJSONPathStrings(f *testing.F) {
	f.Fuzz(func(t *testing.T, path string, doc []byte) {
		steps, err := ParseJSONPath(path)
		if err != nil {
			steps = nil // the document itself
		}
		got, err := steps.Strings(doc)
		var raw json.RawMessage
		if verr := json.Unmarshal(doc, &raw); verr != nil {
			if err == nil && !strings.Contains(verr.Error(), "exceeded max depth") {
				t.Fatalf("accepted a document encoding/json refuses (%v): %q", verr, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused a valid document: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if want := stringLeaves(v, steps); !slices.Equal(got, want) {
			t.Fatalf("path %s: got %q, want %q", steps, got, want)
		}
	})
}

// stringLeaves walks a document decoded by encoding/json the way Strings
// walked it before it read tokens.
func stringLeaves(v any, rest JSONPath) []string {
	if len(rest) == 0 {
		if s, ok := v.(string); ok && s != "" {
			return []string{s}
		}
		return nil
	}
	var out []string
	switch v := v.(type) {
	case []any:
		if rest[0].Each {
			for _, e := range v {
				out = append(out, stringLeaves(e, rest[1:])...)
			}
		}
	case map[string]any:
		if child, ok := v[rest[0].Key]; ok && !rest[0].Each {
			out = stringLeaves(child, rest[1:])
		}
	}
	return out
}
