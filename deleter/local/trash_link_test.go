package local_test

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

// inode returns the device and inode of p's own entry (never following a
// symlink).
func inode(t *testing.T, p string) (uint64, uint64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Dev), st.Ino
}

// TestLocalTrashByLink: after the first file of a directory, files move to
// the trash by linkat and unlinkat. Every rule of the checked way holds on
// that way too: a directory stays (linkat refuses it), a symlink moves as
// a link, a missing file is absent, the file keeps its inode and its own
// modification time, and the move sets the status change time the purge
// goes by.
func TestLocalTrashByLink(t *testing.T) {
	l, fx := newTrashing(t)
	outside := t.TempDir() + "/secret"
	writeFile(t, outside, []byte("secret"))
	fx.Put(t, "d/first.jpg", []byte("1"))
	fx.Put(t, "d/second.jpg", []byte("2"))
	fx.symlink(t, outside, "d/link")
	fx.mkdir(t, "d/sub")
	fx.Put(t, "d/sub/inner.jpg", []byte("i"))
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(fx.in("d/second.jpg"), old, old); err != nil {
		t.Fatal(err)
	}
	_, ino := inode(t, fx.in("d/second.jpg"))
	var links atomic.Int64
	local.SetLinkat(t, func(olddirfd int, oldname string, newdirfd int, newname string, flags int) error {
		links.Add(1)
		return local.Linkat(olddirfd, oldname, newdirfd, newname, flags)
	})
	before := time.Now().Add(-time.Second)

	res := l.Delete(context.Background(), []string{"d/first.jpg", "d/second.jpg", "d/link", "d/sub", "d/missing.jpg"})
	want := []cdccleaner.Outcome{cdccleaner.Deleted, cdccleaner.Deleted, cdccleaner.Deleted, cdccleaner.Failed, cdccleaner.Absent}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("%s: %v (%v), want %v", r.Path, r.Outcome, r.Err, want[i])
		}
	}
	if links.Load() < 3 {
		t.Fatalf("linkat called %d times; want one for each path after the first", links.Load())
	}
	if cdccleaner.Reason(res[3].Err) != cdccleaner.ReasonIsDirectory || string(fx.Read(t, "d/sub/inner.jpg")) != "i" {
		t.Errorf("a directory: %v (%v), its file %q", res[3].Outcome, res[3].Err, fx.Read(t, "d/sub/inner.jpg"))
	}
	if _, got := inode(t, fx.in(".trash/d/second.jpg")); got != ino {
		t.Errorf("trashed second.jpg is inode %d, was %d", got, ino)
	}
	info, err := os.Lstat(fx.in(".trash/d/second.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if !info.ModTime().Equal(old) {
		t.Errorf("trashed second.jpg mtime %v, want its own %v", info.ModTime(), old)
	}
	if c := time.Unix(info.Sys().(*syscall.Stat_t).Ctim.Unix()); c.Before(before) {
		t.Errorf("trashed second.jpg ctime %v, want after %v", c, before)
	}
	if target, err := os.Readlink(fx.in(".trash/d/link")); err != nil || target != outside {
		t.Errorf("trashed link: %q, %v", target, err)
	}
	for _, p := range []string{"d/first.jpg", "d/second.jpg", "d/link"} {
		if fx.Exists(t, p) {
			t.Errorf("%s still in place", p)
		}
	}
	// The purge goes by the status change time: a day's cutoff keeps the
	// file that kept its three-day-old modification time.
	if n, err := l.PurgeTrash(context.Background(), time.Now().Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("purge with a cutoff a day ago: %d, %v; want 0", n, err)
	}
}

// TestLocalTrashStoppedBetweenLinkAndUnlink: a cleaner killed between
// linkat and unlinkat leaves the file under both names. The replay sees
// that the trash holds the very file and removes the name, on either way
// (the first file of a directory takes the checked one, which must not
// trust a rename between two links of one file: it does nothing).
func TestLocalTrashStoppedBetweenLinkAndUnlink(t *testing.T) {
	l, fx := newTrashing(t)
	for _, p := range []string{"d/a.jpg", "d/b.jpg"} {
		fx.Put(t, p, []byte(p))
		fx.mkdir(t, ".trash/d")
		if err := os.Link(fx.in(p), fx.in(".trash/"+p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range l.Delete(context.Background(), []string{"d/a.jpg", "d/b.jpg"}) {
		if r.Outcome != cdccleaner.Deleted || r.Trash != ".trash/"+r.Path {
			t.Errorf("%s: %v, Trash %q (%v); want deleted into the trash", r.Path, r.Outcome, r.Trash, r.Err)
		}
		if fx.Exists(t, r.Path) {
			t.Errorf("%s still in place", r.Path)
		}
		if got := string(fx.Read(t, ".trash/"+r.Path)); got != r.Path {
			t.Errorf("trashed %s holds %q", r.Path, got)
		}
	}
}

// TestLocalTrashReplacesAnOlderCopy: the trash holds an older trashed copy
// of the same path (deleted, uploaded again, deleted again): the newer
// file replaces it, on either way.
func TestLocalTrashReplacesAnOlderCopy(t *testing.T) {
	l, fx := newTrashing(t)
	for _, p := range []string{"d/a.jpg", "d/b.jpg"} {
		fx.Put(t, ".trash/"+p, []byte("old"))
		fx.Put(t, p, []byte("new"))
	}
	for _, r := range l.Delete(context.Background(), []string{"d/a.jpg", "d/b.jpg"}) {
		if r.Outcome != cdccleaner.Deleted || fx.Exists(t, r.Path) || string(fx.Read(t, ".trash/"+r.Path)) != "new" {
			t.Errorf("%s: %v (%v), in place %v, trash holds %q; want the new file in the trash", r.Path, r.Outcome, r.Err, fx.Exists(t, r.Path), fx.Read(t, ".trash/"+r.Path))
		}
	}
}

// TestLocalTrashWithoutHardLinks: a file system without hard links, or a
// kernel that will not link a file for this user (protected_hardlinks),
// answers linkat with an error: the file is moved by rename instead.
func TestLocalTrashWithoutHardLinks(t *testing.T) {
	l, fx := newTrashing(t)
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.EOPNOTSUPP, syscall.EMLINK, syscall.EXDEV} {
		local.SetLinkat(t, func(int, string, int, string, int) error { return errno })
		fx.Put(t, "d/a.jpg", []byte("a"))
		fx.Put(t, "d/b.jpg", []byte("b"))
		for _, r := range l.Delete(context.Background(), []string{"d/a.jpg", "d/b.jpg"}) {
			if r.Outcome != cdccleaner.Deleted || fx.Exists(t, r.Path) || !fx.Exists(t, ".trash/"+r.Path) {
				t.Errorf("linkat failing with %v: %s %v (%v); want it trashed by rename", errno, r.Path, r.Outcome, r.Err)
			}
		}
	}
}

// TestLocalTrashDirectoryVanishesBetweenLinks: the purge removes the trash
// directory after the first file of a directory moved there and before
// the next is linked. linkat answers ENOENT although the file is in place:
// the deletion fails transiently, the file stays, and the retry moves it.
func TestLocalTrashDirectoryVanishesBetweenLinks(t *testing.T) {
	l, fx := newTrashing(t)
	fx.Put(t, "d/a.jpg", []byte("a"))
	fx.Put(t, "d/b.jpg", []byte("b"))
	var calls atomic.Int64
	local.SetLinkat(t, func(olddirfd int, oldname string, newdirfd int, newname string, flags int) error {
		if calls.Add(1) == 1 {
			if err := os.RemoveAll(fx.in(".trash/d")); err != nil {
				return err
			}
		}
		return local.Linkat(olddirfd, oldname, newdirfd, newname, flags)
	})
	res := l.Delete(context.Background(), []string{"d/a.jpg", "d/b.jpg"})
	if res[0].Outcome != cdccleaner.Deleted {
		t.Fatalf("first file: %v (%v)", res[0].Outcome, res[0].Err)
	}
	if r := res[1]; r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) || !fx.Exists(t, "d/b.jpg") {
		t.Fatalf("second file = %v (%v), in place %v; want a transient failure with the file in place", r.Outcome, r.Err, fx.Exists(t, "d/b.jpg"))
	}
	if r := l.Delete(context.Background(), []string{"d/b.jpg"})[0]; r.Outcome != cdccleaner.Deleted || string(fx.Read(t, ".trash/d/b.jpg")) != "b" {
		t.Fatalf("retry = %v (%v); want it trashed", r.Outcome, r.Err)
	}
}
