package cdccleaner_test

import (
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestColumnEqual(t *testing.T) {
	a := cdccleaner.Column{Storage: "media", Schema: "public", Table: "doc", Name: "files",
		JSONPath: cdccleaner.JSONPath{{Key: "files"}, {Each: true}},
		Type:     cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSONB}}
	b := a
	b.JSONPath = cdccleaner.JSONPath{{Key: "files"}, {Each: true}} // another slice, same steps
	if !a.Equal(b) {
		t.Errorf("equal columns compare unequal")
	}
	for name, mutate := range map[string]func(c *cdccleaner.Column){
		"json path": func(c *cdccleaner.Column) { c.JSONPath = cdccleaner.JSONPath{{Key: "files"}} },
		"type":      func(c *cdccleaner.Column) { c.Type.Base = cdccleaner.OIDJSON },
		"name":      func(c *cdccleaner.Column) { c.Name = "other" },
		"protect":   func(c *cdccleaner.Column) { c.Protect = true },
	} {
		c := a
		mutate(&c)
		if a.Equal(c) {
			t.Errorf("%s differs, but Equal says the same", name)
		}
	}
}

func TestColumnTypeJSONText(t *testing.T) {
	for _, tt := range []struct {
		typ  cdccleaner.ColumnType
		want bool
	}{
		{cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSON}, true},
		{cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSONB}, false},
		{cdccleaner.ColumnType{Kind: cdccleaner.KindText, Base: cdccleaner.OIDJSON}, false},
	} {
		if got := tt.typ.JSONText(); got != tt.want {
			t.Errorf("%+v.JSONText() = %v, want %v", tt.typ, got, tt.want)
		}
	}
}

func TestValueKindString(t *testing.T) {
	for k, want := range map[cdccleaner.ValueKind]string{
		cdccleaner.KindNone: "none", cdccleaner.KindText: "text", cdccleaner.KindArray: "array", cdccleaner.KindJSON: "json", 9: "kind(9)", -1: "kind(-1)",
	} {
		if got := k.String(); got != want {
			t.Errorf("ValueKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
