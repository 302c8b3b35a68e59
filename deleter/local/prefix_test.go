package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

func TestLocalPrefixListContract(t *testing.T) {
	deletertest.RunPrefixListContract(t, "media/.trash/", func(t *testing.T) (cdccleaner.PrefixLister, deletertest.Fixture) {
		l, fx := newLocal(t, local.Options{Trash: true, TrashPrefix: "media/.trash/"})
		return l, fx
	})
}

// TestLocalListPrefixEmpty: an empty directory, or one holding only empty
// directories, lists nothing and is no error.
func TestLocalListPrefixEmpty(t *testing.T) {
	l, fx := newLocal(t, local.Options{})
	fx.mkdir(t, "va/empty")
	fx.mkdir(t, "va/dirs/a/b")
	fx.mkdir(t, "va/dirs/c")
	for _, prefix := range []string{"va/empty/", "va/dirs/"} {
		if got := deletertest.ListPrefixAll(t, l, prefix); len(got) != 0 {
			t.Errorf("ListPrefix(%q) listed %q", prefix, sortedKeys(got))
		}
	}
}

// TestLocalListPrefixSymlinksInside: below the prefix a symlink is a file,
// listed with its own size and never followed, whether it points at a
// directory inside the root, outside it, at a file, or nowhere. Sockets
// and pipes are not listed (List leaves them alone too).
func TestLocalListPrefixSymlinksInside(t *testing.T) {
	l, fx := newLocal(t, local.Options{})
	outside := filepath.Dir(fx.outside(t, "secret/s.jpg"))
	fx.Put(t, "other/o.jpg", []byte("o"))
	fx.Put(t, "va/k/real.jpg", []byte("r"))
	fx.symlink(t, outside, "va/k/out")
	fx.symlink(t, "../../other", "va/k/in")
	fx.symlink(t, "real.jpg", "va/k/file")
	fx.symlink(t, "nowhere", "va/k/dangling")
	fx.symlink(t, outside, "va/k/sub/deeper")
	if err := syscall.Mkfifo(fx.in("va/k/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	got := deletertest.ListPrefixAll(t, l, "va/k/")
	want := []string{"va/k/dangling", "va/k/file", "va/k/in", "va/k/out", "va/k/real.jpg", "va/k/sub/deeper"}
	if !slices.Equal(sortedKeys(got), want) {
		t.Fatalf("listed %q, want %q", sortedKeys(got), want)
	}
	if f := got["va/k/out"]; f.Size != int64(len(outside)) {
		t.Errorf("the link va/k/out has size %d, want the length of its target %d", f.Size, len(outside))
	}
	// What the pipeline does next: Delete removes the links, not what they
	// point at.
	for _, r := range l.Delete(context.Background(), sortedKeys(got)) {
		if r.Outcome != cdccleaner.Deleted {
			t.Errorf("Delete(%q) = %v (%v)", r.Path, r.Outcome, r.Err)
		}
	}
	if !exists(t, filepath.Join(outside, "s.jpg")) || !fx.Exists(t, "other/o.jpg") {
		t.Error("deleting the listed links removed what they point at")
	}
}

// TestLocalListPrefixSymlinkedPrefix: the prefix's directory, or one on
// the way, being a symlink is refused with a permanent error and lists
// nothing: escapes_root when the link leads outside the root,
// not_a_directory when it stays inside (files may be reachable there
// through the link, so "nothing" would be a shorter listing that nobody
// notices). The same for PruneDirs, which removes nothing through it.
func TestLocalListPrefixSymlinkedPrefix(t *testing.T) {
	tests := []struct {
		name       string
		target     string // relative to the fixture's directory when outside
		inside     bool
		link       string
		prefix     string
		wantReason string
	}{
		{name: "prefix links outside", target: "secret", link: "va/k", prefix: "va/k/", wantReason: cdccleaner.ReasonEscapesRoot},
		{name: "parent links outside", target: "secret", link: "va", prefix: "va/k/", wantReason: cdccleaner.ReasonEscapesRoot},
		{name: "prefix links inside", target: "../other", inside: true, link: "va/k", prefix: "va/k/", wantReason: cdccleaner.ReasonNotADirectory},
		{name: "parent links inside", target: "other", inside: true, link: "va", prefix: "va/k/", wantReason: cdccleaner.ReasonNotADirectory},
		{name: "prefix links to the root", target: "..", inside: true, link: "va/k", prefix: "va/k/", wantReason: cdccleaner.ReasonNotADirectory},
		{name: "dangling", target: "nowhere", inside: true, link: "va/k", prefix: "va/k/", wantReason: cdccleaner.ReasonNotADirectory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fx := newLocal(t, local.Options{})
			outside := filepath.Dir(fx.outside(t, "secret/k/s.jpg"))
			if err := os.Mkdir(filepath.Join(fx.dir, "secret/k/empty"), 0o755); err != nil {
				t.Fatal(err)
			}
			fx.Put(t, "other/k/o.jpg", []byte("o"))
			fx.mkdir(t, "other/k/empty")
			fx.mkdir(t, "k/empty")
			fx.Put(t, "k/o.jpg", []byte("o"))
			target := tt.target
			if !tt.inside {
				target = filepath.Join(fx.dir, tt.target)
			}
			fx.symlink(t, target, tt.link)

			called := false
			err := l.ListPrefix(context.Background(), tt.prefix, func(f cdccleaner.File) error {
				called = true
				t.Errorf("listed %q through a symlink", f.Path)
				return nil
			})
			if called || !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != tt.wantReason || !strings.Contains(err.Error(), tt.link) {
				t.Errorf("ListPrefix(%q) = %v (reason %s), want a permanent %s error naming %s", tt.prefix, err, cdccleaner.Reason(err), tt.wantReason, tt.link)
			}
			if tt.wantReason == cdccleaner.ReasonEscapesRoot && !errors.Is(err, cdccleaner.ErrEscapesRoot) {
				t.Errorf("ListPrefix(%q) = %v, want it to wrap ErrEscapesRoot", tt.prefix, err)
			}

			err = l.PruneDirs(context.Background(), tt.prefix)
			if !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != tt.wantReason {
				t.Errorf("PruneDirs(%q) = %v, want a permanent %s error", tt.prefix, err, tt.wantReason)
			}
			for _, p := range []string{filepath.Join(outside, "empty"), fx.in("other/k/empty"), fx.in("k/empty"), fx.in(tt.link)} {
				if !exists(t, p) {
					t.Errorf("%s was removed through the symlink", p)
				}
			}
		})
	}
}

// TestLocalListPrefixUnreadable: a directory below the prefix, or the
// prefix's own, that cannot be read is an error naming it, never a
// shorter listing.
func TestLocalListPrefixUnreadable(t *testing.T) {
	if os.Geteuid() == 0 && os.Getenv("CDC_TEST_AS_NOBODY") == "" {
		// Root reads any directory: run this test again as nobody.
		runAsNobody(t, "TestLocalListPrefixUnreadable")
		return
	}
	for _, locked := range []string{"va/k/locked", "va/k"} {
		t.Run(locked, func(t *testing.T) {
			root := t.TempDir()
			write(t, filepath.Join(root, "va/k/a.jpg"), "a")
			write(t, filepath.Join(root, "va/k/locked/b.jpg"), "b")
			if err := os.Chmod(filepath.Join(root, locked), 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(filepath.Join(root, locked), 0o755) })
			l, err := local.New(root, local.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			err = l.ListPrefix(context.Background(), "va/k/", func(cdccleaner.File) error { return nil })
			if err == nil || !strings.Contains(err.Error(), locked) || !errors.Is(err, os.ErrPermission) || cdccleaner.IsPermanent(err) {
				t.Errorf("ListPrefix over the unreadable %s = %v, want a transient permission error naming it", locked, err)
			}
			if err := l.PruneDirs(context.Background(), "va/k/"); err == nil || !errors.Is(err, os.ErrPermission) {
				t.Errorf("PruneDirs over the unreadable %s = %v, want a permission error", locked, err)
			}
		})
	}
}

func TestLocalPruneDirs(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		dirs    []string
		links   [][2]string // target, link
		prefix  string
		gone    []string
		present []string
	}{
		{
			name:   "removes the empty directories and the prefix's own",
			dirs:   []string{"va/k/a/b/c", "va/k/d", "va/k2/e", "va/other"},
			files:  []string{"va/k2.jpg"},
			prefix: "va/k/",
			gone:   []string{"va/k"},
			// Beside and above the prefix, nothing is removed, empty or not.
			present: []string{"va", "va/k2/e", "va/other", "va/k2.jpg"},
		},
		{
			name:    "keeps a non-empty directory and the directories above it",
			dirs:    []string{"va/k/a/b/c", "va/k/d", "va/k/e/f/g"},
			files:   []string{"va/k/e/f/keep.jpg"},
			prefix:  "va/k/",
			gone:    []string{"va/k/a", "va/k/d", "va/k/e/f/g"},
			present: []string{"va/k", "va/k/e", "va/k/e/f", "va/k/e/f/keep.jpg"},
		},
		{
			name:    "a file in the prefix keeps it",
			dirs:    []string{"va/k/a"},
			files:   []string{"va/k/keep.jpg"},
			prefix:  "va/k/",
			gone:    []string{"va/k/a"},
			present: []string{"va/k", "va/k/keep.jpg"},
		},
		{
			name:    "a symlinked directory inside is a file: kept, never followed",
			dirs:    []string{"va/k/a", "elsewhere/empty"},
			links:   [][2]string{{"../../elsewhere", "va/k/link"}},
			prefix:  "va/k/",
			gone:    []string{"va/k/a"},
			present: []string{"va/k", "va/k/link", "elsewhere/empty"},
		},
		{
			name:    "a top-level prefix, never the root",
			dirs:    []string{"va/a/b"},
			prefix:  "va/",
			gone:    []string{"va"},
			present: []string{"."},
		},
		{
			name:    "the trash below the prefix stays",
			dirs:    []string{"media/.trash/va", "media/a"},
			prefix:  "media/",
			gone:    []string{"media/a"},
			present: []string{"media", "media/.trash", "media/.trash/va"},
		},
		{
			name:    "a prefix in the trash is pruned",
			dirs:    []string{"media/.trash/va/k/a", "media/.trash/vb"},
			prefix:  "media/.trash/va/",
			gone:    []string{"media/.trash/va"},
			present: []string{"media/.trash/vb"},
		},
		{
			name:    "a missing prefix is nothing to do",
			dirs:    []string{"va/a"},
			prefix:  "va/missing/",
			present: []string{"va/a"},
		},
		{
			name:    "a prefix that names a file is nothing to do",
			files:   []string{"va/file"},
			prefix:  "va/file/",
			present: []string{"va/file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fx := newLocal(t, local.Options{Trash: true, TrashPrefix: "media/.trash/"})
			for _, d := range tt.dirs {
				fx.mkdir(t, d)
			}
			for _, f := range tt.files {
				fx.Put(t, f, []byte("x"))
			}
			for _, link := range tt.links {
				fx.symlink(t, link[0], link[1])
			}
			if err := l.PruneDirs(context.Background(), tt.prefix); err != nil {
				t.Fatalf("PruneDirs(%q): %v", tt.prefix, err)
			}
			fx.wantTree(t, tt.gone, tt.present)
		})
	}
}

func TestLocalPruneDirsRejectsPrefix(t *testing.T) {
	l, fx := newLocal(t, local.Options{})
	fx.mkdir(t, "va/a")
	outside := filepath.Join(fx.dir, "empty")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "/", "va", "/va/", "./", "../", "../empty/", "va//", "va/../"} {
		err := l.PruneDirs(context.Background(), prefix)
		if !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != cdccleaner.ReasonRejectedPath {
			t.Errorf("PruneDirs(%q) = %v, want a permanent rejected_path error", prefix, err)
		}
	}
	if !fx.Exists(t, "va/a") || !exists(t, outside) {
		t.Error("a rejected prefix removed a directory")
	}
}

func TestLocalPruneDirsCanceled(t *testing.T) {
	l, fx := newLocal(t, local.Options{})
	fx.mkdir(t, "va/k/a/b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.PruneDirs(ctx, "va/k/"); !errors.Is(err, context.Canceled) {
		t.Errorf("PruneDirs with a canceled context = %v, want context.Canceled", err)
	}
	if !fx.Exists(t, "va/k/a/b") {
		t.Error("PruneDirs with a canceled context removed a directory")
	}
}
