package cdccleaner_test

import (
	"slices"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func derivedTemplate(t *testing.T, s string) cdccleaner.Template {
	t.Helper()
	tpl, err := cdccleaner.ParseDerivedTemplate(s, asIs)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func TestDerivedParents(t *testing.T) {
	path := mustTemplate(t, "{key[0:2]}/{key[2:4]}/{key}")
	blobs := cdccleaner.Column{Template: &path, Derived: []cdccleaner.Template{
		derivedTemplate(t, "va/ri/variants/{key}/"), derivedTemplate(t, "previews/{key}.png")}}
	two := mustTemplate(t, "{bucket}/{name}")
	tests := []struct {
		name    string
		c       cdccleaner.Column
		path    string
		parents []string
		known   bool
	}{
		{"below a derived prefix", blobs, "va/ri/variants/abcdef/digest", []string{"ab/cd/abcdef"}, true},
		{"deeper below it: every directory may be the prefix", blobs, "va/ri/variants/abcdef/x/y", []string{"ab/cd/abcdef", "ab/cd/abcdef/x"}, true},
		{"a derived file", blobs, "previews/abcdef.png", []string{"ab/cd/abcdef"}, true},
		{"a key too short for the path", blobs, "previews/abc.png", nil, true},
		{"nothing derived", blobs, "ab/cd/abcdef", nil, true},
		{"the prefix itself is no file below it", blobs, "va/ri/variants/abcdef", nil, true},
		{"an entry of one column", cdccleaner.Column{Name: "image", Derived: []cdccleaner.Template{derivedTemplate(t, "thumbs/{image}.jpg")}},
			"thumbs/a/b.jpg.jpg", []string{"a/b.jpg"}, true},
		{"a URL column: the parent is the path", cdccleaner.Column{Template: func() *cdccleaner.Template { x := mustTemplate(t, "{url}"); return &x }(),
			StripPrefix: []string{"https://cdn/"}, Derived: []cdccleaner.Template{derivedTemplate(t, "thumbs/{url}")}},
			"thumbs/https://cdn/a.jpg", []string{"a.jpg"}, true},
		{"the path needs a column the derived file does not name", cdccleaner.Column{Template: &two,
			Derived: []cdccleaner.Template{derivedTemplate(t, "thumbs/{name}")}}, "thumbs/x.jpg", nil, false},
		{"a derived template that only slices", cdccleaner.Column{Template: &path,
			Derived: []cdccleaner.Template{derivedTemplate(t, "shards/{key[0:2]}/")}}, "shards/ab/x", nil, false},
		{"outside a slicing derived template", cdccleaner.Column{Template: &path,
			Derived: []cdccleaner.Template{derivedTemplate(t, "shards/{key[0:2]}/")}}, "other/ab/x", nil, true},
	}
	for _, tt := range tests {
		parents, known := tt.c.DerivedParents(tt.path)
		if !slices.Equal(parents, tt.parents) || known != tt.known {
			t.Errorf("%s: DerivedParents(%q) = %q, %v; want %q, %v", tt.name, tt.path, parents, known, tt.parents, tt.known)
		}
	}
}
