package cdccleaner_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// asIs is an identifier rule that keeps names as written.
func asIs(s string) (string, error) { return s, nil }

func mustTemplate(t testing.TB, s string) cdccleaner.Template {
	t.Helper()
	tpl, err := cdccleaner.ParseTemplate(s, asIs)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func row(values map[string]string) func(string) (string, bool) {
	return func(c string) (string, bool) {
		v, ok := values[c]
		return v, ok
	}
}

func TestTemplateRender(t *testing.T) {
	tests := []struct {
		tpl    string
		values map[string]string
		want   string // "" means no path
	}{
		{"{key[0:2]}/{key[2:4]}/{key}", map[string]string{"key": "abcdef"}, "ab/cd/abcdef"},
		{"{bucket_id}/{name}", map[string]string{"bucket_id": "7", "name": "a/b.jpg"}, "7/a/b.jpg"},
		{"media/{name}.jpg", map[string]string{"name": "x"}, "media/x.jpg"},
		{"{name}{{literal}}", map[string]string{"name": "x"}, "x{literal}"},
		{"{key[:3]}/{key[3:]}/{key}", map[string]string{"key": "abcdef"}, "abc/def/abcdef"},
		{"{key[0:2]}/{key}", map[string]string{"key": "a"}, ""},                 // slice outside the value
		{"{key}", map[string]string{"key": ""}, ""},                             // empty: no file
		{"{a}/{b}", map[string]string{"a": "x"}, ""},                            // NULL: no file
		{"{key[2:2]}{key}", map[string]string{"key": "ab"}, "ab"},               // an empty slice
		{"{key[1:]}{key}", map[string]string{"key": "abc"}, "bcabc"},            // open end
		{`{"Key"}/x`, map[string]string{`"Key"`: "K"}, "K/x"},                   // asIs keeps the quotes
		{"{key[0:1]}/{key[0:1]}/{key}", map[string]string{"key": "q"}, "q/q/q"}, // repeated slice
		{"{name[0:1]}/{name}", map[string]string{"name": "é.jpg"}, ""},          // a slice cutting é in two: no file
		{"{name[0:2]}/{name}", map[string]string{"name": "é.jpg"}, "é/é.jpg"},   // bytes, not characters
	}
	for _, tt := range tests {
		got, ok := mustTemplate(t, tt.tpl).Render(row(tt.values))
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("%s with %v = %q, %v; want %q", tt.tpl, tt.values, got, ok, tt.want)
		}
	}
}

func TestTemplateParseErrors(t *testing.T) {
	tests := []struct{ tpl, want string }{
		{"{key", "unbalanced {"},
		{"key}", "unbalanced }"},
		{"a/{key[2:1]}/{key}", "out of order"},
		{"{key[0:2]}/x", `column "key" appears only sliced`},
		{"plain/path.jpg", "names no column"},
		{"{}", "empty column name"},
		{"{key[a:2]}/{key}", `"a" is not a byte offset`},
		{"{key[-1:]}/{key}", `"-1" is not a byte offset`},
		{"{key[2]}/{key}", "write [a:b]"},
		{"{key[0:2}/{key}", "unterminated ["},
		{`{"key}`, "unterminated quoted column name"},
		{"{key:2}", "a slice is written {col[a:b]}"},
		{"{a{b}}", "unbalanced {"},
	}
	for _, tt := range tests {
		_, err := cdccleaner.ParseTemplate(tt.tpl, asIs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTemplate(%q) = %v; want an error saying %q", tt.tpl, err, tt.want)
		}
	}
	// The identifier rule's error names the column.
	_, err := cdccleaner.ParseTemplate("{Bad Name}", func(s string) (string, error) { return "", fmt.Errorf("not an identifier") })
	if err == nil || !strings.Contains(err.Error(), "column Bad Name: not an identifier") {
		t.Errorf("identifier error: %v", err)
	}
}

func TestTemplateColumnsAndString(t *testing.T) {
	tpl := mustTemplate(t, "{key[0:2]}/{key[2:]}/{{x}}/{name}/{key}")
	if got := tpl.Columns(); !slices.Equal(got, []string{"key", "name"}) {
		t.Errorf("Columns = %v", got)
	}
	if got := tpl.String(); got != "{key[0:2]}/{key[2:]}/{{x}}/{name}/{key}" {
		t.Errorf("String = %q", got)
	}
}

func TestTemplateReverse(t *testing.T) {
	tests := []struct {
		tpl, path string
		want      []map[string]string
	}{
		{"{key[0:2]}/{key[2:4]}/{key}", "ab/cd/abcdef", []map[string]string{{"key": "abcdef"}}},
		{"{key[0:2]}/{key[2:4]}/{key}", "ab/cx/abcdef", nil}, // slices disagree
		{"{key[0:2]}/{key[2:4]}/{key}", "ab/cd", nil},
		{"{bucket_id}/{name}", "a/b/c", []map[string]string{{"bucket_id": "a", "name": "b/c"}, {"bucket_id": "a/b", "name": "c"}}},
		{"{bucket_id}/{name}", "abc", nil},
		{"{bucket_id}/{name}", "/abc", nil}, // a whole value is never empty
		{"media/{name}.jpg", "media/x.y.jpg", []map[string]string{{"name": "x.y"}}},
		{"media/{name}.jpg", "other/x.jpg", nil},
		{"{a}{b}", "xyz", []map[string]string{{"a": "x", "b": "yz"}, {"a": "xy", "b": "z"}}},
		{"{a}/{a}", "x/x", []map[string]string{{"a": "x"}}},
		{"{a}/{a}", "x/y", nil},
		{"{key[1:]}{key}", "bcabc", []map[string]string{{"key": "abc"}}},
	}
	for _, tt := range tests {
		got, complete := mustTemplate(t, tt.tpl).Reverse(tt.path, 10)
		if !complete || !sameAssignments(got, tt.want) {
			t.Errorf("%s reverse of %q = %v (complete %v); want %v", tt.tpl, tt.path, got, complete, tt.want)
		}
	}
	// More ways than the limit: incomplete, so a caller keeps the file.
	got, complete := mustTemplate(t, "{a}{b}").Reverse(strings.Repeat("x", 20), 5)
	if complete || len(got) != 5 {
		t.Errorf("20 bytes split in two with limit 5: %d assignments, complete %v; want 5, incomplete", len(got), complete)
	}
	// A search too long to finish is incomplete too.
	_, complete = mustTemplate(t, "{a}{b}{c}{d}{e}").Reverse(strings.Repeat("x", 200), 1_000_000)
	if complete {
		t.Error("five adjacent columns over 200 bytes: complete; want the search bounded and incomplete")
	}
}

func sameAssignments(a, b []map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y map[string]string) bool { return maps.Equal(x, y) }) {
			return false
		}
	}
	return true
}

// FuzzTemplate checks the parser and the reverse mapping against Render:
// a parsed template prints back to a template that parses the same, every
// path Render gives reverses to the row's values (among others, when the
// template is ambiguous), and every assignment Reverse returns renders the
// path it was given.
func FuzzTemplate(f *testing.F) {
	f.Add("{key[0:2]}/{key[2:4]}/{key}", "abcdef", "x", "ab/cd/abcdef")
	f.Add("{bucket_id}/{name}", "7", "a/b.jpg", "7/a/b.jpg")
	f.Add("media/{name}{{x}}.jpg", "n", "", "media/n{x}.jpg")
	f.Add("{a}{b}", "xy", "z", "xyz")
	f.Add("{a[1:]}{b}{a}", "qq", "b", "qbqq")
	f.Fuzz(func(t *testing.T, src, v1, v2, path string) {
		tpl, err := cdccleaner.ParseTemplate(src, asIs)
		if err != nil {
			return
		}
		again, err := cdccleaner.ParseTemplate(tpl.String(), asIs)
		if err != nil || again.String() != tpl.String() {
			t.Fatalf("%q prints as %q, which parses as %q (%v)", src, tpl.String(), again.String(), err)
		}
		cols := tpl.Columns()
		values := map[string]string{}
		for i, c := range cols {
			values[c] = []string{v1, v2}[i%2]
		}
		if rendered, ok := tpl.Render(row(values)); ok {
			got, complete := tpl.Reverse(rendered, 64)
			if complete && !slices.ContainsFunc(got, func(m map[string]string) bool { return maps.Equal(m, values) }) {
				t.Fatalf("%q renders %v as %q, whose reverse %v lacks it", src, values, rendered, got)
			}
		}
		got, _ := tpl.Reverse(path, 64)
		for _, m := range got {
			if r, ok := tpl.Render(row(m)); !ok || r != path {
				t.Fatalf("%q: reverse of %q gave %v, which renders %q (%v)", src, path, m, r, ok)
			}
		}
	})
}
