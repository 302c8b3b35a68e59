package refcheck

import (
	"context"
	"maps"
	"slices"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// staticRefs references a fixed set of paths and records what it is asked.
type staticRefs struct {
	refs  map[string]bool
	asked [][]string
}

func (s *staticRefs) Visible(context.Context, []uint32) (bool, error) { return true, nil }

func (s *staticRefs) Referenced(_ context.Context, _ string, paths []string) (map[string]bool, error) {
	s.asked = append(s.asked, slices.Clone(paths))
	out := map[string]bool{}
	for _, p := range paths {
		if s.refs[p] {
			out[p] = true
		}
	}
	return out, nil
}

// TestDerivedReferences: a file below a derived prefix, or a derived file,
// is referenced while the path it derives from is; a file that may derive
// from a path that cannot be named is referenced; other files and other
// storages are answered as the wrapped checker answers.
func TestDerivedReferences(t *testing.T) {
	ident := func(s string) (string, error) { return s, nil }
	path, err := cdccleaner.ParseTemplate("{key[0:2]}/{key[2:4]}/{key}", ident)
	if err != nil {
		t.Fatal(err)
	}
	variants, err := cdccleaner.ParseDerivedTemplate("va/ri/variants/{key}/", ident)
	if err != nil {
		t.Fatal(err)
	}
	shards, err := cdccleaner.ParseDerivedTemplate("shards/{key[0:2]}/", ident)
	if err != nil {
		t.Fatal(err)
	}
	inner := &staticRefs{refs: map[string]bool{"ab/cd/abcdef": true, "plain.jpg": true}}
	refs := WithDerived(inner, []cdccleaner.Column{
		{Storage: "disk", Template: &path, Derived: []cdccleaner.Template{variants, shards}},
		{Storage: "other", Name: "file"},
	})
	got, err := refs.Referenced(context.Background(), "disk", []string{
		"va/ri/variants/abcdef/d1", // its blob is referenced
		"va/ri/variants/uvwxyz/d2", // its blob is gone
		"shards/ab/x",              // cannot be mapped back: kept
		"plain.jpg", "other.jpg",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"va/ri/variants/abcdef/d1": true, "shards/ab/x": true, "plain.jpg": true}
	if !maps.Equal(got, want) {
		t.Errorf("referenced %v, want %v", got, want)
	}
	if asked := inner.asked[0]; !slices.Contains(asked, "ab/cd/abcdef") || !slices.Contains(asked, "uv/wx/uvwxyz") {
		t.Errorf("asked %q; want the parents asked too", asked)
	}
	// Without derived entries the checker is unwrapped.
	if plain := WithDerived(inner, []cdccleaner.Column{{Storage: "other", Name: "file"}}); plain != cdccleaner.ReferenceChecker(inner) {
		t.Errorf("WithDerived without derived entries = %T, want the checker itself", plain)
	}
}
