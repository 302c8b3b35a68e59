package scan_test

import (
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

func TestColumns(t *testing.T) {
	image := cdccleaner.Column{Storage: "media", Schema: "public", Table: "photo", Name: "image"}
	thumb := cdccleaner.Column{Storage: "media", Schema: "public", Table: "photo", Name: "thumb", Protect: true}
	doc := cdccleaner.Column{Storage: "docs", Schema: "public", Table: "doc", Name: "file"}
	configured := []cdccleaner.Column{image, thumb, doc}
	tests := []struct {
		name    string
		storage string
		found   []cdccleaner.Column
		want    int    // columns returned
		err     string // a part of the error; "" for none
	}{
		{"every column found", "media", []cdccleaner.Column{image, thumb, doc}, 2, ""},
		{"other storages' columns need not be found", "docs", []cdccleaner.Column{doc}, 1, ""},
		{"a protect column missing", "media", []cdccleaner.Column{image, doc}, 0, "configured columns not found in the database (or not visible to this role): public.photo.thumb"},
		{"no column references the storage", "other", []cdccleaner.Column{image, thumb, doc}, 0, `no watch or protect column references storage "other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cols, err := scan.Columns(tt.storage, configured, tt.found)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			case len(cols) != tt.want:
				t.Fatalf("%d columns, want %d", len(cols), tt.want)
			}
			for _, c := range cols {
				if c.Storage != tt.storage {
					t.Errorf("column %s of storage %q returned", c.Source(), c.Storage)
				}
			}
		})
	}
}
