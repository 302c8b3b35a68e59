package discover

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

var (
	typeText  = cdccleaner.ColumnType{Kind: cdccleaner.KindText, Base: 25}
	typeChar  = cdccleaner.ColumnType{Kind: cdccleaner.KindText, Base: cdccleaner.OIDBpchar, Padded: true}
	typeArray = cdccleaner.ColumnType{Kind: cdccleaner.KindArray, Base: 1009}
	typeJSONB = cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSONB}
)

func TestGroups(t *testing.T) {
	tests := []struct {
		name string
		typ  cdccleaner.ColumnType
		vals []string
		want map[string][]string // json_path ("" for none) -> leaves
	}{
		{name: "text values are one group", typ: typeText, vals: []string{"a.jpg", "b.jpg", "a.jpg"},
			want: map[string][]string{"": {"a.jpg", "b.jpg"}}},
		{name: "character(n) padding is no part of a path", typ: typeChar, vals: []string{"a.jpg   ", "   "},
			want: map[string][]string{"": {"a.jpg"}}},
		{name: "array elements", typ: typeArray, vals: []string{`{a.jpg,"b c.jpg",NULL}`, `{}`},
			want: map[string][]string{"": {"a.jpg", "b c.jpg"}}},
		{name: "json leaves by path", typ: typeJSONB, vals: []string{
			`{"files": [{"path": "docs/1.pdf", "name": "One"}, {"path": "docs/2.pdf", "name": ""}], "cover": "c.jpg", "n": 1e400}`,
			`{"files": [{"path": "docs/3.pdf", "size": 12}], "cover": null}`,
		}, want: map[string][]string{
			"files[*].path": {"docs/1.pdf", "docs/2.pdf", "docs/3.pdf"},
			"files[*].name": {"One"},
			"cover":         {"c.jpg"},
		}},
		{name: "a json document that is a string", typ: typeJSONB, vals: []string{`"a.jpg"`},
			want: map[string][]string{"": {"a.jpg"}}},
		{name: "a top-level array of strings", typ: typeJSONB, vals: []string{`["a.jpg", ["b.jpg"]]`},
			want: map[string][]string{"[*]": {"a.jpg"}, "[*][*]": {"b.jpg"}}},
		{name: "nested arrays and objects", typ: typeJSONB, vals: []string{`{"g": [{"sizes": [{"path": "s/1.jpg"}, {"path": "s/2.jpg"}]}], "e": {}, "a": []}`},
			want: map[string][]string{"g[*].sizes[*].path": {"s/1.jpg", "s/2.jpg"}}},
		{name: "keys json_path cannot name are left out", typ: typeJSONB, vals: []string{`{"a.b": "x.jpg", "": "y.jpg", "ok": {"c[0]": "z.jpg"}, "k": "k.jpg"}`},
			want: map[string][]string{"k": {"k.jpg"}}},
		{name: "invalid documents are skipped", typ: typeJSONB, vals: []string{`{"a": `, `{"a": "a.jpg"}`},
			want: map[string][]string{"a": {"a.jpg"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string][]string{}
			for _, g := range groups(tt.typ, tt.vals, 10) {
				got[g.key()] = g.Leaves
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("groups = %q\nwant     %q", got, tt.want)
			}
		})
	}
}

func TestGroupsBounds(t *testing.T) {
	var doc strings.Builder
	doc.WriteString("{")
	for i := range 200 {
		if i > 0 {
			doc.WriteString(",")
		}
		doc.WriteString(`"k` + strings.Repeat("x", i) + `": "v.jpg"`)
	}
	doc.WriteString("}")
	if n := len(groups(typeJSONB, []string{doc.String()}, 10)); n != maxGroups {
		t.Errorf("%d groups, want at most %d", n, maxGroups)
	}
	deep := strings.Repeat(`{"a":`, maxDepth+5) + `"deep.jpg"` + strings.Repeat("}", maxDepth+5)
	if g := groups(typeJSONB, []string{deep}, 10); len(g) != 0 {
		t.Errorf("a leaf deeper than maxDepth was collected: %v", g)
	}
	if g := groups(typeText, []string{"a", "b", "c"}, 2); len(g[0].Leaves) != 2 {
		t.Errorf("perGroup not kept: %v", g)
	}
}

func TestPlausible(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"a.jpg", true},
		{"photos/2024/a", true},
		{"https://cdn.example.com/media/a.jpg", true},
		{"xkf2ohq2kr7h1uy8qbtm9a5hfvvl", true}, // an Active Storage key
		{"0b1f4e9e-6bd5-4f09-9d55-2f5ad4d2f0b7", true},
		{"draft", false},
		{"Holiday in Rome", false},
		{"published", false}, // a word without a digit
		{"multi\nline.txt", false},
		{"", false},
		{strings.Repeat("a/", 600), false},
	}
	for _, tt := range tests {
		if got := plausible(tt.v); got != tt.want {
			t.Errorf("plausible(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	if got := names("a/b.jpg"); !reflect.DeepEqual(got, []string{"a/b.jpg"}) {
		t.Errorf("a canonical path names itself, got %q", got)
	}
	got := names("https://cdn.example.com/media/a.jpg")
	for _, want := range []string{"a.jpg", "media/a.jpg"} {
		if !slices.Contains(got, want) {
			t.Errorf("names of a URL %q lack %q", got, want)
		}
	}
	if got := names("https://h/" + strings.Repeat("d/", 40) + "a.jpg"); len(got) != MaxNames {
		t.Errorf("%d names, want at most %d", len(got), MaxNames)
	}
}
