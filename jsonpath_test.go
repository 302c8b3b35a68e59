package cdccleaner

import (
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
