package local_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

func newTrashLocal(t *testing.T) (*local.Storage, string) {
	t.Helper()
	root := t.TempDir()
	l, err := local.New(root, local.Options{Trash: true, TrashPrefix: ".trash/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, root
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLocalTrashMovesAndPurges(t *testing.T) {
	l, root := newTrashLocal(t)
	outside := filepath.Join(t.TempDir(), "secret")
	write(t, outside, "secret")
	write(t, filepath.Join(root, "photos/a.jpg"), "a")
	write(t, filepath.Join(root, "b.jpg"), "b")
	write(t, filepath.Join(root, ".trash/already/there.jpg"), "t")
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)

	res := l.Delete(context.Background(), []string{"photos/a.jpg", "b.jpg", "missing.jpg", "link", "dir", "../x", ".trash/already/there.jpg"})
	want := []cdccleaner.Outcome{cdccleaner.Deleted, cdccleaner.Deleted, cdccleaner.Absent, cdccleaner.Deleted, cdccleaner.Failed, cdccleaner.Failed, cdccleaner.Deleted}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("%s: %v (%v), want %v", r.Path, r.Outcome, r.Err, want[i])
		}
	}
	if cdccleaner.Reason(res[4].Err) != cdccleaner.ReasonIsDirectory || cdccleaner.Reason(res[5].Err) != cdccleaner.ReasonRejectedPath {
		t.Errorf("reasons: dir %q, ../x %q", cdccleaner.Reason(res[4].Err), cdccleaner.Reason(res[5].Err))
	}
	for _, p := range []string{"photos/a.jpg", "b.jpg", "link", ".trash/already/there.jpg"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after trashing: %v", p, err)
		}
	}
	// Contents and the link itself are in the trash; the link's target is
	// untouched; a path already in the trash is deleted for real.
	if b, err := os.ReadFile(filepath.Join(root, ".trash/photos/a.jpg")); err != nil || string(b) != "a" {
		t.Errorf("trashed photos/a.jpg: %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(root, ".trash/link")); err != nil || target != outside {
		t.Errorf("trashed link: %q, %v", target, err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "secret" {
		t.Errorf("link target: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, ".trash/.trash")); !os.IsNotExist(err) {
		t.Errorf("a trashed path was trashed again")
	}
	// Trashing stamps the time, so retention counts from the deletion.
	st, err := os.Stat(filepath.Join(root, ".trash/b.jpg"))
	if err != nil || st.ModTime().Before(before) {
		t.Fatalf("trashed b.jpg mtime %v, want after %v (%v)", st.ModTime(), before, err)
	}

	// Nothing is old enough yet.
	if n, err := l.PurgeTrash(context.Background(), before); err != nil || n != 0 {
		t.Fatalf("purge before: %d, %v", n, err)
	}
	// An old modification time alone (a cleaner that may not stamp a file
	// it does not own leaves it) does not make a file old: the move
	// changed its change time, which nobody can set back.
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(root, ".trash/photos/a.jpg"), old, old); err != nil {
		t.Fatal(err)
	}
	if n, err := l.PurgeTrash(context.Background(), time.Now().Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("purge of files trashed just now with an old mtime: %d, %v; want 0", n, err)
	}
	// Files trashed before a cutoff go, with their emptied directories;
	// one trashed after it stays.
	time.Sleep(20 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond)
	write(t, filepath.Join(root, "later.jpg"), "l")
	if res := l.Delete(context.Background(), []string{"later.jpg"}); res[0].Outcome != cdccleaner.Deleted {
		t.Fatalf("trash later.jpg: %v %v", res[0].Outcome, res[0].Err)
	}
	n, err := l.PurgeTrash(context.Background(), cutoff)
	if err != nil || n != 3 { // photos/a.jpg, b.jpg and the link
		t.Fatalf("purge: %d, %v; want 3", n, err)
	}
	if _, err := os.Stat(filepath.Join(root, ".trash/photos")); !os.IsNotExist(err) {
		t.Errorf("emptied trash directory kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ".trash/later.jpg")); err != nil {
		t.Errorf("young trashed file purged: %v", err)
	}
	// Everything goes with a cutoff in the future; the link target stays.
	if _, err := l.PurgeTrash(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "secret" {
		t.Errorf("link target after purge: %q, %v", b, err)
	}
}

func TestLocalTrashNeverLeavesTheRoot(t *testing.T) {
	l, root := newTrashLocal(t)
	outside := t.TempDir()
	// The trash directory is a symlink leading outside: nothing may be
	// moved there.
	if err := os.Symlink(outside, filepath.Join(root, ".trash")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "a.jpg"), "a")
	res := l.Delete(context.Background(), []string{"a.jpg"})
	if res[0].Outcome != cdccleaner.Failed || !cdccleaner.IsPermanent(res[0].Err) {
		t.Fatalf("trash through an escaping symlink: %v %v", res[0].Outcome, res[0].Err)
	}
	if _, err := os.Stat(filepath.Join(root, "a.jpg")); err != nil {
		t.Fatalf("a.jpg moved: %v", err)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("something was moved outside the root: %v", entries)
	}
	// A symlinked directory inside the trash is not followed by the purge.
	l2, root2 := newTrashLocal(t)
	write(t, filepath.Join(outside, "keep.txt"), "k")
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(outside, "keep.txt"), old, old)
	if err := os.MkdirAll(filepath.Join(root2, ".trash"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root2, ".trash/out")); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.PurgeTrash(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep.txt")); err != nil {
		t.Fatalf("purge followed a symlink out of the root: %v", err)
	}
}

func TestLocalTrashRejectsBadPrefix(t *testing.T) {
	for _, prefix := range []string{"", "/abs/", "../up/", ".trash", "a//b/"} {
		if _, err := local.New(t.TempDir(), local.Options{Trash: true, TrashPrefix: prefix}); err == nil {
			t.Errorf("trash prefix %q accepted", prefix)
		}
	}
}

// newTrashing returns a Local with trash on under ".trash/" and empty
// directories pruned, on a fresh fixture.
func newTrashing(t *testing.T) (*local.Storage, *localFixture) {
	t.Helper()
	return newLocal(t, local.Options{PruneEmptyDirs: true, Trash: true, TrashPrefix: ".trash/"})
}

func TestLocalDeleteReportsTrash(t *testing.T) {
	l, fx := newTrashing(t)
	fx.Put(t, ".trash/copy/file", []byte("c"))
	fx.symlink(t, "../nowhere", ".trash/copy/link")
	fx.mkdir(t, ".trash/copy/dir")
	fx.Put(t, ".trash/copy/dir/f", []byte("d"))
	tests := []struct {
		path  string
		trash string
	}{
		{path: "copy/file", trash: ".trash/copy/file"},
		{path: "copy/link", trash: ".trash/copy/link"}, // a link is trashed as a link
		{path: "copy/dir"},     // a directory is no trashed file
		{path: "copy/dir/f/x"}, // ENOTDIR in the trash
		{path: "copy/none"},
	}
	for _, tt := range tests {
		r := l.Delete(context.Background(), []string{tt.path})[0]
		if r.Outcome != cdccleaner.Absent || r.Trash != tt.trash || r.Err != nil {
			t.Errorf("Delete(%q) = %v, Trash %q (err %v); want absent, Trash %q", tt.path, r.Outcome, r.Trash, r.Err, tt.trash)
		}
	}
	// Trash off: never a Trash.
	plain, pfx := newLocal(t, local.Options{})
	pfx.Put(t, "a", []byte("a"))
	pfx.Put(t, ".trash/b", []byte("b"))
	for _, r := range plain.Delete(context.Background(), []string{"a", "b"}) {
		if r.Trash != "" {
			t.Errorf("Delete(%q) without trash: Trash %q", r.Path, r.Trash)
		}
	}
}

func TestLocalDeleteCannotLookInTrash(t *testing.T) {
	l, fx := newTrashing(t)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "a.jpg"), []byte("outside"))
	fx.symlink(t, outside, ".trash")
	r := l.Delete(context.Background(), []string{"a.jpg"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.Reason(r.Err) != cdccleaner.ReasonEscapesRoot || r.Trash != "" {
		t.Fatalf("Delete of an absent path with the trash outside the root = %v, Trash %q (err %v); want failed, escapes_root", r.Outcome, r.Trash, r.Err)
	}
}

// TestLocalTrashDirectoryVanishes: the purge removes a trash directory
// left empty just as a file is moved into it. The file is still at its
// path, so the deletion fails transiently (and is retried), never
// reported absent, which would leave it unjournaled for good.
func TestLocalTrashDirectoryVanishes(t *testing.T) {
	l, fx := newTrashing(t)
	fx.Put(t, "a/b.jpg", []byte("b"))
	var calls atomic.Int64
	local.SetRenameat(t, func(olddirfd int, oldname string, newdirfd int, newname string) error {
		if calls.Add(1) == 1 {
			if err := os.Remove(fx.in(".trash/a")); err != nil {
				return err
			}
		}
		return local.Renameat(olddirfd, oldname, newdirfd, newname)
	})
	r := l.Delete(context.Background(), []string{"a/b.jpg"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) || !fx.Exists(t, "a/b.jpg") {
		t.Fatalf("Delete = %v (%v), file in place %v; want a transient failure with the file in place", r.Outcome, r.Err, fx.Exists(t, "a/b.jpg"))
	}
	r = l.Delete(context.Background(), []string{"a/b.jpg"})[0]
	if r.Outcome != cdccleaner.Deleted || r.Trash != ".trash/a/b.jpg" || string(fx.Read(t, ".trash/a/b.jpg")) != "b" {
		t.Fatalf("retried Delete = %v, Trash %q (%v); want it trashed", r.Outcome, r.Trash, r.Err)
	}
}

// TestLocalTrashBlockedByAFile: a file trashed earlier as "x" is where
// "x/y.jpg" needs a directory in the trash. The deletion fails for good
// (recorded, never retried: retrying would hold the slot until the purge),
// and the file stays in place.
func TestLocalTrashBlockedByAFile(t *testing.T) {
	l, fx := newTrashing(t)
	fx.Put(t, "x", []byte("x"))
	if r := l.Delete(context.Background(), []string{"x"})[0]; r.Outcome != cdccleaner.Deleted {
		t.Fatalf("trash x: %v %v", r.Outcome, r.Err)
	}
	fx.Put(t, "x/y.jpg", []byte("y"))
	r := l.Delete(context.Background(), []string{"x/y.jpg"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.Reason(r.Err) != cdccleaner.ReasonNotADirectory {
		t.Fatalf("trash x/y.jpg = %v (%v), want a failure with reason %s", r.Outcome, r.Err, cdccleaner.ReasonNotADirectory)
	}
	if string(fx.Read(t, "x/y.jpg")) != "y" || string(fx.Read(t, ".trash/x")) != "x" {
		t.Fatal("a blocked trashing changed something")
	}
}
