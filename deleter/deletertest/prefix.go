package deletertest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// RunPrefixListContract runs the contract of cdccleaner.PrefixLister
// against the storages newStorage builds: storages whose TrashPrefix is
// trashPrefix, a directory below the top ("media/.trash/"), so that a
// prefix can hold the trash without lying in it. newStorage is called once
// per subtest and must return an empty storage and its fixture; it
// registers its own cleanup.
func RunPrefixListContract(t *testing.T, trashPrefix string, newStorage func(t *testing.T) (cdccleaner.PrefixLister, Fixture)) {
	t.Helper()
	ctx := context.Background()

	t.Run("Nested", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "va/ri/variants/k1/aa", []byte("1"))
		fx.Put(t, "va/ri/variants/k1/x/y/bb", []byte("22"))
		fx.Put(t, "va/ri/variants/k1x/cc", []byte("sibling sharing the name's start"))
		fx.Put(t, "va/ri/variants/k2/dd", []byte("sibling"))
		fx.Put(t, "va/ri/ee", []byte("parent"))
		fx.Put(t, "k1/ff", []byte("elsewhere"))
		fx.PutOutside(t, "va/ri/variants/k1/outside")
		got := ListPrefixAll(t, s, "va/ri/variants/k1/")
		wantPaths(t, got, "va/ri/variants/k1/aa", "va/ri/variants/k1/x/y/bb")
		if f := got["va/ri/variants/k1/x/y/bb"]; f.Size != 2 || f.ModTime.IsZero() {
			t.Errorf("va/ri/variants/k1/x/y/bb = %+v, want size 2 and a time", f)
		}
		wantPaths(t, ListPrefixAll(t, s, "va/"), "va/ri/variants/k1/aa", "va/ri/variants/k1/x/y/bb",
			"va/ri/variants/k1x/cc", "va/ri/variants/k2/dd", "va/ri/ee")
		wantPaths(t, ListPrefixAll(t, s, "va/ri/variants/k1/x/y/"), "va/ri/variants/k1/x/y/bb")
	})

	t.Run("Missing", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "va/aa", []byte("a"))
		wantPaths(t, ListPrefixAll(t, s, "missing/"))
		wantPaths(t, ListPrefixAll(t, s, "va/missing/deeper/"))
	})

	t.Run("PrefixNamesAFile", func(t *testing.T) {
		// Nothing can lie below a file: nothing listed, no error.
		s, fx := newStorage(t)
		fx.Put(t, "va/file", []byte("a"))
		wantPaths(t, ListPrefixAll(t, s, "va/file/"))
		wantPaths(t, ListPrefixAll(t, s, "va/file/deeper/"))
	})

	t.Run("Trash", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, trashPrefix+"va/k1/aa", []byte("trashed"))
		fx.Put(t, trashPrefix+"top", []byte("trashed"))
		fx.Put(t, "media/va/k1/aa", []byte("live"))
		fx.Put(t, "media/.trashy/bb", []byte("not the trash"))
		// A prefix that holds the trash without lying in it skips it.
		wantPaths(t, ListPrefixAll(t, s, "media/"), "media/va/k1/aa", "media/.trashy/bb")
		// One that lies in it lists it: the trash's place of a prefix,
		// for restoring.
		wantPaths(t, ListPrefixAll(t, s, trashPrefix), trashPrefix+"va/k1/aa", trashPrefix+"top")
		wantPaths(t, ListPrefixAll(t, s, trashPrefix+"va/k1/"), trashPrefix+"va/k1/aa")
	})

	t.Run("RejectedPrefix", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "va/aa", []byte("a"))
		fx.PutOutside(t, "aa")
		for _, prefix := range []string{"", "/", "va", "/va/", "./", "../", "va/../", "va//", "./va/", "va\x00/"} {
			called := false
			err := s.ListPrefix(ctx, prefix, func(cdccleaner.File) error { called = true; return nil })
			if called || !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != cdccleaner.ReasonRejectedPath {
				t.Errorf("ListPrefix(%q) = %v (listed something: %v), want a permanent rejected_path error and nothing listed", prefix, err, called)
			}
		}
	})

	t.Run("StopsAtFnError", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "va/aa", []byte("a"))
		fx.Put(t, "va/bb", []byte("b"))
		fx.Put(t, "va/x/cc", []byte("c"))
		stop := errors.New("stop")
		n := 0
		if err := s.ListPrefix(ctx, "va/", func(cdccleaner.File) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("ListPrefix with a failing fn = %v after %d calls, want that error after 1", err, n)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		s, fx := newStorage(t)
		// In one directory (local) and one page (S3): a check of ctx
		// only before reading the next chunk or page would miss it.
		for _, p := range []string{"va/aa", "va/bb", "va/cc", "va/dd"} {
			fx.Put(t, p, []byte("a"))
		}
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		n := 0
		if err := s.ListPrefix(canceled, "va/", func(cdccleaner.File) error { n++; return nil }); !errors.Is(err, context.Canceled) || n != 0 {
			t.Errorf("ListPrefix with a canceled context = %v after %d calls, want context.Canceled before any", err, n)
		}
		// Canceled while listing: it stops at the next file.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		n = 0
		err := s.ListPrefix(cctx, "va/", func(cdccleaner.File) error { n++; cancel(); return nil })
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Errorf("ListPrefix canceled at its first file = %v after %d calls, want context.Canceled after 1", err, n)
		}
	})
}

// ListPrefixAll returns s's listing of prefix as path => file, failing t
// on an error, a path listed twice, or a path that does not start with
// prefix.
func ListPrefixAll(t *testing.T, s cdccleaner.PrefixLister, prefix string) map[string]cdccleaner.File {
	t.Helper()
	out := map[string]cdccleaner.File{}
	err := s.ListPrefix(context.Background(), prefix, func(f cdccleaner.File) error {
		if _, dup := out[f.Path]; dup {
			t.Errorf("%s listed twice", f.Path)
		}
		out[f.Path] = f
		return nil
	})
	if err != nil {
		t.Fatalf("ListPrefix(%q): %v", prefix, err)
	}
	return out
}

// wantPaths checks that got lists exactly the paths want.
func wantPaths(t *testing.T, got map[string]cdccleaner.File, want ...string) {
	t.Helper()
	paths := slices.Sorted(maps.Keys(got))
	slices.Sort(want)
	if !slices.Equal(paths, want) {
		t.Errorf("listed %q, want %q", paths, want)
	}
}
