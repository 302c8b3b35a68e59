package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

// localFixture is a storage root inside a temporary directory; the rest of
// that directory is "outside" the storage.
type localFixture struct {
	dir  string // parent of root
	root string
}

var _ deletertest.Fixture = (*localFixture)(nil)

func newLocalFixture(t *testing.T) *localFixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &localFixture{dir: dir, root: root}
}

// newLocal returns a Local on a fresh fixture, closed when the test ends.
func newLocal(t *testing.T, opts local.Options) (*local.Storage, *localFixture) {
	t.Helper()
	fx := newLocalFixture(t)
	l, err := local.New(fx.root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, fx
}

func (f *localFixture) in(p string) string { return filepath.Join(f.root, filepath.FromSlash(p)) }

func (f *localFixture) Put(t *testing.T, p string, data []byte) {
	t.Helper()
	writeFile(t, f.in(p), data)
}

func (f *localFixture) Exists(t *testing.T, p string) bool {
	t.Helper()
	return exists(t, f.in(p))
}

func (f *localFixture) PutOutside(t *testing.T, name string) func() bool {
	t.Helper()
	full := filepath.Join(f.dir, filepath.FromSlash(name))
	writeFile(t, full, []byte("outside"))
	return func() bool { return exists(t, full) }
}

// outside creates a file outside the root and returns its absolute path.
func (f *localFixture) outside(t *testing.T, p string) string {
	t.Helper()
	full := filepath.Join(f.dir, filepath.FromSlash(p))
	writeFile(t, full, []byte("outside"))
	return full
}

func (f *localFixture) mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(f.in(p), 0o755); err != nil {
		t.Fatal(err)
	}
}

// symlink creates the link p inside the root pointing at target, as given.
func (f *localFixture) symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.in(p)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, f.in(p)); err != nil {
		t.Fatal(err)
	}
}

// wantTree fails t for each path of gone that exists and each of present
// that does not.
func (f *localFixture) wantTree(t *testing.T, gone, present []string) {
	t.Helper()
	for _, p := range gone {
		if f.Exists(t, p) {
			t.Errorf("%s still exists", p)
		}
	}
	for _, p := range present {
		if !f.Exists(t, p) {
			t.Errorf("%s was removed", p)
		}
	}
}

func writeFile(tb testing.TB, full string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// exists reports whether full exists, without following a final symlink.
func exists(t *testing.T, full string) bool {
	t.Helper()
	_, err := os.Lstat(full)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lstat %s: %v", full, err)
	}
	return err == nil
}

func TestLocalContract(t *testing.T) {
	for _, prune := range []bool{false, true} {
		t.Run(fmt.Sprintf("prune=%v", prune), func(t *testing.T) {
			deletertest.RunStorageContract(t, func(t *testing.T) (cdccleaner.Storage, deletertest.Fixture) {
				l, fx := newLocal(t, local.Options{PruneEmptyDirs: prune})
				return l, fx
			})
		})
	}
}

func TestNewLocal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, nil)
	tests := []struct {
		name    string
		root    string
		wantErr bool
	}{
		{name: "directory", root: dir},
		{name: "missing", root: filepath.Join(dir, "missing"), wantErr: true},
		{name: "file", root: file, wantErr: true},
		{name: "empty", root: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := local.New(tt.root, local.Options{})
			if tt.wantErr {
				if err == nil {
					l.Close()
					t.Fatalf("NewLocal(%q) succeeded, want error", tt.root)
				}
				if !strings.HasPrefix(err.Error(), "open root ") {
					t.Errorf("NewLocal(%q) error %q does not say what it did", tt.root, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewLocal(%q): %v", tt.root, err)
			}
			defer l.Close()
			if l.Root() != tt.root {
				t.Errorf("Root() = %q, want %q", l.Root(), tt.root)
			}
		})
	}
}

// TestLocalFileSystem covers what only a real file system has: symlinks,
// directories, hard links, name limits.
func TestLocalFileSystem(t *testing.T) {
	long := strings.Repeat("n", 300) // longer than NAME_MAX (255)
	tests := []struct {
		name    string
		setup   func(t *testing.T, fx *localFixture) (survivors []string)
		path    string
		want    cdccleaner.Outcome
		reason  string   // when want is Failed
		gone    []string // paths inside the root that must be gone afterwards
		present []string // paths inside the root that must remain
	}{
		{
			name: "symlink to outside file is removed as a link",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/secret")
				fx.symlink(t, o, "link")
				return []string{o}
			},
			path: "link", want: cdccleaner.Deleted, gone: []string{"link"},
		},
		{
			name: "relative symlink to outside file is removed as a link",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/secret")
				fx.symlink(t, "../../outside/secret", "sub/link")
				return []string{o}
			},
			path: "sub/link", want: cdccleaner.Deleted, gone: []string{"sub/link"},
		},
		{
			name: "symlink to inside file is removed as a link",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, "target", []byte("t"))
				fx.symlink(t, "target", "link")
				return nil
			},
			path: "link", want: cdccleaner.Deleted, gone: []string{"link"}, present: []string{"target"},
		},
		{
			name: "dangling symlink is removed",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.symlink(t, "nowhere", "link")
				return nil
			},
			path: "link", want: cdccleaner.Deleted, gone: []string{"link"},
		},
		{
			name: "symlink to directory is removed as a link",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, "realdir/f", []byte("f"))
				fx.symlink(t, "realdir", "dirlink")
				return nil
			},
			path: "dirlink", want: cdccleaner.Deleted, gone: []string{"dirlink"}, present: []string{"realdir/f"},
		},
		{
			name: "symlink to outside directory is removed as a link",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/passwd")
				fx.symlink(t, filepath.Dir(o), "evil")
				return []string{o, filepath.Dir(o)}
			},
			path: "evil", want: cdccleaner.Deleted, gone: []string{"evil"},
		},
		{
			name: "parent is absolute symlink to outside",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/passwd")
				fx.symlink(t, filepath.Dir(o), "evil")
				return []string{o}
			},
			path: "evil/passwd", want: cdccleaner.Failed, reason: cdccleaner.ReasonEscapesRoot, present: []string{"evil"},
		},
		{
			name: "parent is relative symlink to outside",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/passwd")
				fx.symlink(t, "../outside", "evil")
				return []string{o}
			},
			path: "evil/passwd", want: cdccleaner.Failed, reason: cdccleaner.ReasonEscapesRoot,
		},
		{
			name: "nested symlink climbing out",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/passwd")
				fx.symlink(t, "../..", "sub/up")
				return []string{o}
			},
			path: "sub/up/outside/passwd", want: cdccleaner.Failed, reason: cdccleaner.ReasonEscapesRoot,
		},
		{
			name: "symlink to sibling sharing the root's name as prefix",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "root-sibling/file")
				fx.symlink(t, "../root-sibling", "sib")
				return []string{o}
			},
			path: "sib/file", want: cdccleaner.Failed, reason: cdccleaner.ReasonEscapesRoot,
		},
		{
			name: "escape to a missing outside file is still an escape",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.symlink(t, "/nonexistent-cdc-cleaner-test", "evil")
				return nil
			},
			path: "evil/x", want: cdccleaner.Failed, reason: cdccleaner.ReasonEscapesRoot,
		},
		{
			name: "parent symlink inside root is followed",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, "real/f", []byte("f"))
				fx.symlink(t, "real", "alias")
				return nil
			},
			path: "alias/f", want: cdccleaner.Deleted, gone: []string{"real/f"}, present: []string{"alias", "real"},
		},
		{
			name: "parent symlink loop",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.symlink(t, "loop", "loop")
				return nil
			},
			path: "loop/x", want: cdccleaner.Failed, reason: cdccleaner.ReasonSymlinkLoop, present: []string{"loop"},
		},
		{
			name: "empty directory",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.mkdir(t, "d")
				return nil
			},
			path: "d", want: cdccleaner.Failed, reason: cdccleaner.ReasonIsDirectory, present: []string{"d"},
		},
		{
			name: "non-empty directory",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, "d/e/f", []byte("f"))
				return nil
			},
			path: "d/e", want: cdccleaner.Failed, reason: cdccleaner.ReasonIsDirectory, present: []string{"d/e/f"},
		},
		{
			name: "parent is a file",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, "f.txt", []byte("f"))
				return nil
			},
			path: "f.txt/x", want: cdccleaner.Absent, present: []string{"f.txt"},
		},
		{
			name: "parent is a symlink to a file",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, "f.txt", []byte("f"))
				fx.symlink(t, "f.txt", "lf")
				return nil
			},
			path: "lf/x", want: cdccleaner.Absent, present: []string{"f.txt", "lf"},
		},
		{
			name: "file name too long",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.mkdir(t, "d")
				return nil
			},
			path: "d/" + long, want: cdccleaner.Failed, reason: cdccleaner.ReasonNameTooLong,
		},
		{
			name: "directory name too long",
			path: long + "/f", want: cdccleaner.Failed, reason: cdccleaner.ReasonNameTooLong,
		},
		{
			name: "backslash is an ordinary character",
			setup: func(t *testing.T, fx *localFixture) []string {
				fx.Put(t, `back\slash.txt`, []byte("b"))
				return nil
			},
			path: `back\slash.txt`, want: cdccleaner.Deleted, gone: []string{`back\slash.txt`},
		},
		{
			name: "backslash parent lookalike",
			setup: func(t *testing.T, fx *localFixture) []string {
				return []string{fx.outside(t, "x")}
			},
			path: `..\x`, want: cdccleaner.Absent,
		},
		{
			name: "absolute path to outside file",
			setup: func(t *testing.T, fx *localFixture) []string {
				return []string{fx.outside(t, "outside/secret")}
			},
			// Filled in below: the absolute path of the outside file.
			path: "", want: cdccleaner.Failed, reason: cdccleaner.ReasonRejectedPath,
		},
		{
			name: "hard link to outside file removes only the link",
			setup: func(t *testing.T, fx *localFixture) []string {
				o := fx.outside(t, "outside/secret")
				if err := os.Link(o, fx.in("hl")); err != nil {
					t.Fatal(err)
				}
				return []string{o}
			},
			path: "hl", want: cdccleaner.Deleted, gone: []string{"hl"},
		},
		{
			name: "fifo is removed, never opened",
			setup: func(t *testing.T, fx *localFixture) []string {
				if err := syscall.Mkfifo(fx.in("fifo"), 0o644); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			path: "fifo", want: cdccleaner.Deleted, gone: []string{"fifo"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fx := newLocal(t, local.Options{PruneEmptyDirs: true})
			var survivors []string
			if tt.setup != nil {
				survivors = tt.setup(t, fx)
			}
			p := tt.path
			if p == "" {
				p = survivors[0]
			}
			res := l.Delete(context.Background(), []string{p})
			if len(res) != 1 || res[0].Path != p {
				t.Fatalf("Delete(%q) = %+v, want one result for it", p, res)
			}
			r := res[0]
			if r.Outcome != tt.want {
				t.Fatalf("Delete(%q) = %v (err %v), want %v", p, r.Outcome, r.Err, tt.want)
			}
			if tt.want == cdccleaner.Failed {
				if !cdccleaner.IsPermanent(r.Err) || cdccleaner.Reason(r.Err) != tt.reason {
					t.Errorf("Delete(%q) err %v: permanent %v, reason %q; want permanent %q",
						p, r.Err, cdccleaner.IsPermanent(r.Err), cdccleaner.Reason(r.Err), tt.reason)
				}
			} else if r.Err != nil {
				t.Errorf("Delete(%q) = %v with err %v", p, r.Outcome, r.Err)
			}
			for _, s := range survivors {
				if !exists(t, s) {
					t.Errorf("Delete(%q) removed %s outside the root", p, s)
				}
			}
			for _, g := range tt.gone {
				if fx.Exists(t, g) {
					t.Errorf("Delete(%q) left %s", p, g)
				}
			}
			for _, k := range tt.present {
				if !fx.Exists(t, k) {
					t.Errorf("Delete(%q) removed %s", p, k)
				}
			}
			if !exists(t, fx.root) {
				t.Errorf("Delete(%q) removed the root", p)
			}
		})
	}
}

// TestLocalEscapesRoot pins the recognition of os.Root's escape error, which
// this package matches by text because os does not export it.
func TestLocalEscapesRoot(t *testing.T) {
	r, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, escape := r.Open("../x")
	if escape == nil {
		t.Fatal(`os.Root opened "../x"`)
	}
	outcome, err := local.Classify("../x", escape, false)
	if outcome != cdccleaner.Failed || cdccleaner.Reason(err) != cdccleaner.ReasonEscapesRoot || !errors.Is(err, cdccleaner.ErrEscapesRoot) {
		t.Fatalf("classify(%v) = %v, %v; want Failed escapes_root (has os.Root's escape error changed text?)", escape, outcome, err)
	}
}

// TestClassify maps errnos to outcomes directly: tests may run as root, where
// permission bits do not stop unlink, and EIO or EROFS cannot be provoked.
func TestClassify(t *testing.T) {
	pathErr := func(errno syscall.Errno) error { return &os.PathError{Op: "openat", Path: "a", Err: errno} }
	sysErr := func(errno syscall.Errno) error { return os.NewSyscallError("unlinkat", errno) }
	tests := []struct {
		name   string
		err    error
		isDir  bool
		want   cdccleaner.Outcome
		reason string
	}{
		{name: "ENOENT", err: sysErr(syscall.ENOENT), want: cdccleaner.Absent},
		{name: "ENOENT opening parent", err: pathErr(syscall.ENOENT), want: cdccleaner.Absent},
		{name: "ENOTDIR opening parent", err: pathErr(syscall.ENOTDIR), want: cdccleaner.Absent},
		{name: "ENOTDIR", err: sysErr(syscall.ENOTDIR), want: cdccleaner.Absent},
		{name: "EISDIR", err: sysErr(syscall.EISDIR), want: cdccleaner.Failed, reason: cdccleaner.ReasonIsDirectory},
		{name: "EPERM on directory", err: sysErr(syscall.EPERM), isDir: true, want: cdccleaner.Failed, reason: cdccleaner.ReasonIsDirectory},
		{name: "EPERM on file", err: sysErr(syscall.EPERM), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "EACCES", err: sysErr(syscall.EACCES), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "EACCES opening parent", err: pathErr(syscall.EACCES), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "EROFS", err: sysErr(syscall.EROFS), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "EIO", err: sysErr(syscall.EIO), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "ENOSPC", err: sysErr(syscall.ENOSPC), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "EBUSY", err: sysErr(syscall.EBUSY), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "EMFILE opening parent", err: pathErr(syscall.EMFILE), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "ENAMETOOLONG", err: sysErr(syscall.ENAMETOOLONG), want: cdccleaner.Failed, reason: cdccleaner.ReasonNameTooLong},
		{name: "ENAMETOOLONG opening parent", err: pathErr(syscall.ENAMETOOLONG), want: cdccleaner.Failed, reason: cdccleaner.ReasonNameTooLong},
		{name: "ELOOP opening parent", err: pathErr(syscall.ELOOP), want: cdccleaner.Failed, reason: cdccleaner.ReasonSymlinkLoop},
		{name: "closed root", err: &os.PathError{Op: "openat", Path: "a", Err: os.ErrClosed}, want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
		{name: "unknown", err: errors.New("something new"), want: cdccleaner.Failed, reason: cdccleaner.ReasonTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcome, err := local.Classify("a/b", tt.err, tt.isDir)
			if outcome != tt.want {
				t.Fatalf("classify(%v) outcome = %v, want %v", tt.err, outcome, tt.want)
			}
			if tt.want != cdccleaner.Failed {
				if err != nil {
					t.Fatalf("classify(%v) = %v with err %v", tt.err, outcome, err)
				}
				return
			}
			if got := cdccleaner.Reason(err); got != tt.reason {
				t.Errorf("classify(%v) reason = %q, want %q", tt.err, got, tt.reason)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classify(%v) = %v, does not wrap the cause", tt.err, err)
			}
			if !strings.Contains(err.Error(), `"a/b"`) {
				t.Errorf("classify error %q does not name the path", err)
			}
		})
	}
}

// TestLocalReadOnlyDirectory checks, on a real directory, that a permission
// error is transient and that the retry succeeds once it is lifted.
func TestLocalReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 && os.Getenv("CDC_TEST_AS_NOBODY") == "" {
		// Permission bits do not stop root: run this test again as nobody.
		runAsNobody(t, "TestLocalReadOnlyDirectory")
		return
	}
	l, fx := newLocal(t, local.Options{})
	fx.Put(t, "ro/f", []byte("f"))
	if err := os.Chmod(fx.in("ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(fx.in("ro"), 0o755) })

	r := l.Delete(context.Background(), []string{"ro/f"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) {
		t.Fatalf("Delete in read-only directory = %v, %v; want Failed, transient", r.Outcome, r.Err)
	}
	if !errors.Is(r.Err, os.ErrPermission) {
		t.Errorf("error %v is not a permission error", r.Err)
	}
	if !fx.Exists(t, "ro/f") {
		t.Fatal("file removed despite the failure")
	}

	if err := os.Chmod(fx.in("ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := l.Delete(context.Background(), []string{"ro/f"})[0]; r.Outcome != cdccleaner.Deleted {
		t.Fatalf("retry after chmod = %v, %v; want Deleted", r.Outcome, r.Err)
	}
}

func TestLocalPruneEmptyDirs(t *testing.T) {
	tests := []struct {
		name    string
		prune   bool
		files   []string
		links   [][2]string // target, link
		dirs    []string
		path    string
		want    cdccleaner.Outcome
		gone    []string
		present []string
	}{
		{
			name: "removes emptied parents up to a non-empty one", prune: true,
			files: []string{"a/b/c/f.txt", "a/keep.txt"},
			path:  "a/b/c/f.txt", want: cdccleaner.Deleted,
			gone: []string{"a/b/c", "a/b"}, present: []string{"a", "a/keep.txt"},
		},
		{
			name: "stops at a non-empty parent", prune: true,
			files: []string{"x/y/f", "x/y/g"},
			path:  "x/y/f", want: cdccleaner.Deleted,
			gone: []string{"x/y/f"}, present: []string{"x/y/g"},
		},
		{
			name: "removes a top-level directory but not the root", prune: true,
			files: []string{"only/f"},
			path:  "only/f", want: cdccleaner.Deleted,
			gone: []string{"only"},
		},
		{
			name: "file in the root leaves the root", prune: true,
			files: []string{"top.txt"},
			path:  "top.txt", want: cdccleaner.Deleted,
			gone: []string{"top.txt"},
		},
		{
			name: "off leaves emptied directories", prune: false,
			files: []string{"a/b/f"},
			path:  "a/b/f", want: cdccleaner.Deleted,
			gone: []string{"a/b/f"}, present: []string{"a/b"},
		},
		{
			name: "never removes a symlinked parent", prune: true,
			files: []string{"real/f"}, links: [][2]string{{"real", "link"}},
			path: "link/f", want: cdccleaner.Deleted,
			gone: []string{"real/f"}, present: []string{"link", "real"},
		},
		{
			name: "symlinked ancestor stops the walk", prune: true,
			files: []string{"real/c/f"}, links: [][2]string{{"real", "link"}},
			path: "link/c/f", want: cdccleaner.Deleted,
			gone: []string{"real/c"}, present: []string{"link", "real"},
		},
		{
			name: "symlink to the root stops the walk", prune: true,
			files: []string{"f"}, links: [][2]string{{"../..", "a/b/up"}},
			path: "a/b/up/f", want: cdccleaner.Deleted,
			gone: []string{"f"}, present: []string{"a/b/up"},
		},
		{
			name: "absent file prunes nothing", prune: true,
			dirs: []string{"e/f"},
			path: "e/f/missing", want: cdccleaner.Absent,
			present: []string{"e/f"},
		},
		{
			name: "directory path prunes nothing", prune: true,
			dirs: []string{"e/f"},
			path: "e/f", want: cdccleaner.Failed,
			present: []string{"e/f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fx := newLocal(t, local.Options{PruneEmptyDirs: tt.prune})
			for _, f := range tt.files {
				fx.Put(t, f, []byte(f))
			}
			for _, ln := range tt.links {
				fx.symlink(t, ln[0], ln[1])
			}
			for _, d := range tt.dirs {
				fx.mkdir(t, d)
			}
			r := l.Delete(context.Background(), []string{tt.path})[0]
			if r.Outcome != tt.want {
				t.Fatalf("Delete(%q) = %v (err %v), want %v", tt.path, r.Outcome, r.Err, tt.want)
			}
			fx.wantTree(t, tt.gone, tt.present)
			if !exists(t, fx.root) {
				t.Error("the root was removed")
			}
		})
	}
}

// countdownCtx is a context whose Err turns to Canceled after n calls,
// simulating a cancellation in the middle of a batch.
type countdownCtx struct {
	context.Context
	n atomic.Int32
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestLocalCanceledMidBatch(t *testing.T) {
	l, fx := newLocal(t, local.Options{})
	paths := []string{"1", "2", "3", "4", "5"}
	for _, p := range paths {
		fx.Put(t, p, []byte(p))
	}
	ctx := &countdownCtx{Context: context.Background()}
	ctx.n.Store(2)
	res := l.Delete(ctx, paths)
	for i, r := range res {
		if i < 2 {
			if r.Outcome != cdccleaner.Deleted {
				t.Errorf("%s before cancel = %v (err %v), want Deleted", r.Path, r.Outcome, r.Err)
			}
			continue
		}
		if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s after cancel = %v, %v; want Failed, transient, canceled", r.Path, r.Outcome, r.Err)
		}
		if !fx.Exists(t, r.Path) {
			t.Errorf("%s removed after cancel", r.Path)
		}
	}
}

func TestLocalClosed(t *testing.T) {
	l, fx := newLocal(t, local.Options{})
	fx.Put(t, "f", []byte("f"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := l.Delete(context.Background(), []string{"f"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) {
		t.Fatalf("Delete after Close = %v, %v; want Failed, transient", r.Outcome, r.Err)
	}
	if !fx.Exists(t, "f") {
		t.Fatal("file removed after Close")
	}
}

// TestLocalConcurrent deletes the same paths from several goroutines, with
// pruning on: each file is reported Deleted exactly once.
func TestLocalConcurrent(t *testing.T) {
	l, fx := newLocal(t, local.Options{PruneEmptyDirs: true})
	paths := make([]string, 300)
	for i := range paths {
		paths[i] = fmt.Sprintf("c/%d/%d/f%d", i%3, i%7, i)
		fx.Put(t, paths[i], nil)
	}
	const workers = 8
	results := make([][]cdccleaner.Result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { results[w] = l.Delete(context.Background(), paths) })
	}
	wg.Wait()
	for i, p := range paths {
		deleted := 0
		for w := range workers {
			switch r := results[w][i]; r.Outcome {
			case cdccleaner.Deleted:
				deleted++
			case cdccleaner.Absent:
			default:
				t.Errorf("%s: worker %d got %v (err %v)", p, w, r.Outcome, r.Err)
			}
		}
		if deleted != 1 {
			t.Errorf("%s reported Deleted %d times, want once", p, deleted)
		}
	}
	if fx.Exists(t, "c") {
		t.Error("c not pruned after all its files were deleted")
	}
}

func BenchmarkLocalDelete(b *testing.B) {
	const files, batch = 10_000, 500
	root := b.TempDir()
	l, err := local.New(root, local.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	paths := make([]string, files)
	for i := range paths {
		paths[i] = fmt.Sprintf("d%02d/f%05d.jpg", i%100, i)
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, p := range paths {
			full := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(full, nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for start := 0; start < files; start += batch {
			for _, r := range l.Delete(ctx, paths[start:start+batch]) {
				if r.Outcome != cdccleaner.Deleted {
					b.Fatalf("%s: %v (err %v)", r.Path, r.Outcome, r.Err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.N*files)/b.Elapsed().Seconds(), "files/s")
}

// TestLocalMixedBatch deletes, in one call, paths spread over directories
// in interleaved order, with duplicates and every kind of refusal: each
// result is in its path's place and says what happened to that path alone,
// and directories are pruned once all their names are gone.
func TestLocalMixedBatch(t *testing.T) {
	l, fx := newLocal(t, local.Options{PruneEmptyDirs: true})
	for _, p := range []string{"a/1", "a/2", "b/1", "p/q/1", "p/q/2", "keep/1", "keep/2", "file"} {
		fx.Put(t, p, []byte(p))
	}
	if err := os.MkdirAll(fx.in("dir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := fx.outside(t, "outside/secret")
	fx.symlink(t, filepath.Dir(secret), "esc")
	tests := []struct {
		path   string
		want   cdccleaner.Outcome
		reason string
	}{
		{"a/1", cdccleaner.Deleted, ""},
		{"b/1", cdccleaner.Deleted, ""},
		{"p/q/1", cdccleaner.Deleted, ""},
		{"esc/secret", cdccleaner.Failed, cdccleaner.ReasonEscapesRoot},
		{"a/2", cdccleaner.Deleted, ""},
		{"a/1", cdccleaner.Absent, ""}, // the same path again
		{"../a/1", cdccleaner.Failed, cdccleaner.ReasonRejectedPath},
		{"missing/x", cdccleaner.Absent, ""},
		{"file/x", cdccleaner.Absent, ""}, // parent is a file
		{"dir/sub", cdccleaner.Failed, cdccleaner.ReasonIsDirectory},
		{"keep/1", cdccleaner.Deleted, ""},
		{"p/q/2", cdccleaner.Deleted, ""},
	}
	paths := make([]string, len(tests))
	for i, tt := range tests {
		paths[i] = tt.path
	}
	res := l.Delete(context.Background(), paths)
	if len(res) != len(tests) {
		t.Fatalf("%d results for %d paths", len(res), len(tests))
	}
	for i, tt := range tests {
		r := res[i]
		if r.Path != tt.path || r.Outcome != tt.want {
			t.Errorf("result %d = %q %v (err %v), want %q %v", i, r.Path, r.Outcome, r.Err, tt.path, tt.want)
			continue
		}
		if tt.want == cdccleaner.Failed && cdccleaner.Reason(r.Err) != tt.reason {
			t.Errorf("%s: reason %q (err %v), want %q", tt.path, cdccleaner.Reason(r.Err), r.Err, tt.reason)
		}
	}
	for _, gone := range []string{"a", "b", "p/q", "p", "keep/1"} {
		if fx.Exists(t, gone) {
			t.Errorf("%s still exists", gone)
		}
	}
	for _, kept := range []string{"keep/2", "file", "dir/sub", "esc"} {
		if !fx.Exists(t, kept) {
			t.Errorf("%s was removed", kept)
		}
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("the file outside the root was touched: %v", err)
	}
}
