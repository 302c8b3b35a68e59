package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

var _ deletertest.RestoreFixture = (*localFixture)(nil)

func (f *localFixture) Read(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(f.in(p))
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return data
}

// withoutNoReplace makes renameat2(RENAME_NOREPLACE) fail with errno until
// t ends, as on a file system without it, and counts the calls.
func withoutNoReplace(t *testing.T, errno syscall.Errno) *atomic.Int64 {
	t.Helper()
	var calls atomic.Int64
	local.SetRenameNoReplace(t, func(int, string, int, string) error {
		calls.Add(1)
		return errno
	})
	return &calls
}

func TestLocalRestoreContract(t *testing.T) {
	tests := []struct {
		name     string
		prune    bool
		fallback bool // linkat and unlinkat instead of renameat2
	}{
		{name: "prune=false", prune: false},
		{name: "prune=true", prune: true},
		{name: "prune=true,linkat", prune: true, fallback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls *atomic.Int64
			if tt.fallback {
				calls = withoutNoReplace(t, syscall.EINVAL)
			}
			deletertest.RunRestoreContract(t, ".trash/", func(t *testing.T) (deletertest.RestoreStorage, deletertest.RestoreFixture) {
				l, fx := newLocal(t, local.Options{PruneEmptyDirs: tt.prune, Trash: true, TrashPrefix: ".trash/"})
				return l, fx
			})
			if tt.fallback && calls.Load() == 0 {
				t.Error("the linkat fallback was never taken")
			}
		})
	}
}

// trashed puts data at p, trashes it and returns where it went.
func trashed(t *testing.T, l *local.Storage, fx *localFixture, p, data string) string {
	t.Helper()
	fx.Put(t, p, []byte(data))
	return trashPath(t, l, p)
}

// trashPath trashes p and returns where it went.
func trashPath(t *testing.T, l *local.Storage, p string) string {
	t.Helper()
	r := l.Delete(context.Background(), []string{p})[0]
	if r.Outcome != cdccleaner.Deleted || r.Trash != ".trash/"+p {
		t.Fatalf("Delete(%q) = %v, Trash %q (err %v); want deleted into .trash/", p, r.Outcome, r.Trash, r.Err)
	}
	return r.Trash
}

func restore(t *testing.T, l *local.Storage, p, trash string) (cdccleaner.RestoreOutcome, error) {
	t.Helper()
	return l.Restore(context.Background(), p, trash)
}

func wantRestored(t *testing.T, l *local.Storage, p, trash string, want cdccleaner.RestoreOutcome) {
	t.Helper()
	if got, err := restore(t, l, p, trash); got != want || err != nil {
		t.Fatalf("Restore(%q, %q) = %v, %v; want %v", p, trash, got, err, want)
	}
}

// wantFailed checks that a restore failed with reason (ReasonTransient: not
// permanent).
func wantFailed(t *testing.T, got cdccleaner.RestoreOutcome, err error, reason string) {
	t.Helper()
	if err == nil || got != 0 || cdccleaner.Reason(err) != reason {
		t.Fatalf("Restore = %v, %v (reason %q); want an error with reason %q", got, err, cdccleaner.Reason(err), reason)
	}
}

func lstat(t *testing.T, full string) os.FileInfo {
	t.Helper()
	info, err := os.Lstat(full)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func ino(t *testing.T, full string) uint64 {
	t.Helper()
	return lstat(t, full).Sys().(*syscall.Stat_t).Ino
}

func TestLocalRestoreRecreatesPrunedDirs(t *testing.T) {
	l, fx := newTrashing(t)
	fx.Put(t, "keep/me", []byte("k"))
	trash := trashed(t, l, fx, "a/b/c/file.jpg", "f")
	if fx.Exists(t, "a") {
		t.Fatal("the emptied directories were not pruned")
	}
	wantRestored(t, l, "a/b/c/file.jpg", trash, cdccleaner.Restored)
	if got := string(fx.Read(t, "a/b/c/file.jpg")); got != "f" {
		t.Errorf("restored file = %q", got)
	}
	for _, dir := range []string{"a", "a/b", "a/b/c"} {
		if info := lstat(t, fx.in(dir)); !info.IsDir() {
			t.Errorf("%s is %v, want a directory", dir, info.Mode())
		}
	}
	// The emptied trash directories stay until PurgeTrash.
	if !fx.Exists(t, ".trash/a/b/c") || fx.Exists(t, trash) {
		t.Error("the restore removed trash directories or left the file in the trash")
	}
}

func TestLocalRestoreSymlink(t *testing.T) {
	l, fx := newTrashing(t)
	secret := fx.outside(t, "secret")
	fx.Put(t, "target.txt", []byte("target"))
	links := map[string]string{
		"links/out":      secret,
		"links/in":       "../target.txt",
		"links/dangling": "nowhere",
	}
	for p, target := range links {
		fx.symlink(t, target, p)
		trash := trashPath(t, l, p)
		wantRestored(t, l, p, trash, cdccleaner.Restored)
		if got, err := os.Readlink(fx.in(p)); err != nil || got != target {
			t.Errorf("%s after the restore: link to %q, %v; want a link to %q", p, got, err, target)
		}
		if fx.Exists(t, trash) {
			t.Errorf("%s still in the trash", trash)
		}
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "outside" {
		t.Errorf("the link target outside the root: %q, %v", data, err)
	}
	if got := string(fx.Read(t, "target.txt")); got != "target" || lstat(t, fx.in("target.txt")).Mode()&os.ModeSymlink != 0 {
		t.Errorf("the link target inside the root changed: %q", got)
	}
}

func TestLocalRestoreKeepsFile(t *testing.T) {
	l, fx := newTrashing(t)
	trash := trashed(t, l, fx, "a/b.jpg", "b")
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(fx.in(trash), old, old); err != nil {
		t.Fatal(err)
	}
	want := ino(t, fx.in(trash))
	wantRestored(t, l, "a/b.jpg", trash, cdccleaner.Restored)
	info := lstat(t, fx.in("a/b.jpg"))
	if !info.ModTime().Equal(old) {
		t.Errorf("restored mtime %v, want the trash copy's %v", info.ModTime(), old)
	}
	if got := info.Sys().(*syscall.Stat_t); got.Ino != want || got.Nlink != 1 {
		t.Errorf("restored inode %d with %d links, want %d with 1: the same file, moved", got.Ino, got.Nlink, want)
	}
}

func TestLocalRestoreOccupiedByAnything(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, fx *localFixture)
	}{
		{name: "file", setup: func(t *testing.T, fx *localFixture) { fx.Put(t, "a/b.jpg", []byte("new")) }},
		{name: "directory", setup: func(t *testing.T, fx *localFixture) { fx.mkdir(t, "a/b.jpg") }},
		{name: "dangling symlink", setup: func(t *testing.T, fx *localFixture) { fx.symlink(t, "nowhere", "a/b.jpg") }},
		{name: "symlink outside", setup: func(t *testing.T, fx *localFixture) { fx.symlink(t, fx.dir, "a/b.jpg") }},
		{name: "fifo", setup: func(t *testing.T, fx *localFixture) {
			fx.mkdir(t, "a")
			if err := syscall.Mkfifo(fx.in("a/b.jpg"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fx := newTrashing(t)
			trash := trashed(t, l, fx, "a/b.jpg", "old")
			tt.setup(t, fx)
			before, trashIno := ino(t, fx.in("a/b.jpg")), ino(t, fx.in(trash))
			wantRestored(t, l, "a/b.jpg", trash, cdccleaner.Occupied)
			if ino(t, fx.in("a/b.jpg")) != before || ino(t, fx.in(trash)) != trashIno {
				t.Error("Occupied, but something was moved")
			}
			if got := string(fx.Read(t, trash)); got != "old" {
				t.Errorf("trash copy = %q", got)
			}
		})
	}
}

func TestLocalRestoreDirectoryInTrash(t *testing.T) {
	l, fx := newTrashing(t)
	fx.Put(t, ".trash/d/f", []byte("f"))
	got, err := restore(t, l, "d", ".trash/d")
	wantFailed(t, got, err, cdccleaner.ReasonIsDirectory)
	if !errors.Is(err, cdccleaner.ErrIsDirectory) {
		t.Errorf("error %v does not wrap ErrIsDirectory", err)
	}
	if fx.Exists(t, "d") || !fx.Exists(t, ".trash/d/f") {
		t.Error("a directory was moved out of the trash")
	}
}

// TestLocalRestoreTrashTurnsDirectory: the trash entry is a file when
// Restore looks and a directory when it moves it (purged, and a file
// below the same name trashed since); the directory goes back.
func TestLocalRestoreTrashTurnsDirectory(t *testing.T) {
	l, fx := newTrashing(t)
	trash := trashed(t, l, fx, "a/b", "b")
	var calls atomic.Int64
	local.SetRenameNoReplace(t, func(olddirfd int, oldname string, newdirfd int, newname string) error {
		if calls.Add(1) == 1 {
			if err := os.Remove(fx.in(trash)); err != nil {
				return err
			}
			writeFile(t, fx.in(trash+"/c"), []byte("c"))
		}
		return local.RenameNoReplace(olddirfd, oldname, newdirfd, newname)
	})
	got, err := restore(t, l, "a/b", trash)
	wantFailed(t, got, err, cdccleaner.ReasonIsDirectory)
	if fx.Exists(t, "a/b") || string(fx.Read(t, trash+"/c")) != "c" {
		t.Error("the directory was not put back into the trash")
	}
}

func TestLocalRestoreParentIsFile(t *testing.T) {
	l, fx := newTrashing(t)
	trash := trashed(t, l, fx, "a/b.jpg", "b")
	fx.Put(t, "a", []byte("a file where the directory was"))
	got, err := restore(t, l, "a/b.jpg", trash)
	// Permanent: the file stays a file until someone moves it, and
	// retrying would hold the slot until then.
	wantFailed(t, got, err, cdccleaner.ReasonNotADirectory)
	if string(fx.Read(t, "a")) != "a file where the directory was" || string(fx.Read(t, trash)) != "b" {
		t.Error("a failed restore changed something")
	}
}

func TestLocalRestoreNeverLeavesTheRoot(t *testing.T) {
	t.Run("parent outside", func(t *testing.T) {
		l, fx := newTrashing(t)
		outside := t.TempDir()
		fx.symlink(t, outside, "out")
		fx.Put(t, ".trash/out/x.jpg", []byte("x"))
		fx.Put(t, ".trash/out/new/x.jpg", []byte("x"))
		for _, p := range []string{"out/x.jpg", "out/new/x.jpg"} {
			got, err := restore(t, l, p, ".trash/"+p)
			wantFailed(t, got, err, cdccleaner.ReasonEscapesRoot)
			if !fx.Exists(t, ".trash/"+p) {
				t.Errorf("%s left the trash", p)
			}
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Errorf("the restore created %v outside the root", entries)
		}
	})
	t.Run("trash outside", func(t *testing.T) {
		l, fx := newTrashing(t)
		outside := t.TempDir()
		writeFile(t, filepath.Join(outside, "x.jpg"), []byte("outside"))
		fx.symlink(t, outside, ".trash")
		got, err := restore(t, l, "x.jpg", ".trash/x.jpg")
		wantFailed(t, got, err, cdccleaner.ReasonEscapesRoot)
		if fx.Exists(t, "x.jpg") || !exists(t, filepath.Join(outside, "x.jpg")) {
			t.Error("a file was moved into the root from outside")
		}
	})
}

func TestLocalRestoreLinkFallback(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EINVAL, syscall.ENOSYS, syscall.EOPNOTSUPP} {
		t.Run(errno.Error(), func(t *testing.T) {
			calls := withoutNoReplace(t, errno)
			l, fx := newTrashing(t)
			trash := trashed(t, l, fx, "a/b.jpg", "b")
			want := ino(t, fx.in(trash))
			wantRestored(t, l, "a/b.jpg", trash, cdccleaner.Restored)
			if calls.Load() == 0 {
				t.Fatal("renameat2 was not tried first")
			}
			st := lstat(t, fx.in("a/b.jpg")).Sys().(*syscall.Stat_t)
			if st.Ino != want || st.Nlink != 1 || fx.Exists(t, trash) {
				t.Errorf("restored inode %d with %d links (want %d with 1), trash name left: %v", st.Ino, st.Nlink, want, fx.Exists(t, trash))
			}
			// A directory cannot be hard-linked: never moved.
			fx.Put(t, ".trash/d/f", []byte("f"))
			got, err := restore(t, l, "d", ".trash/d")
			wantFailed(t, got, err, cdccleaner.ReasonIsDirectory)
			// A symlink is linked as a link.
			fx.symlink(t, "nowhere", "links/l")
			trash = trashPath(t, l, "links/l")
			wantRestored(t, l, "links/l", trash, cdccleaner.Restored)
			if target, err := os.Readlink(fx.in("links/l")); err != nil || target != "nowhere" {
				t.Errorf("restored link: %q, %v", target, err)
			}
		})
	}
}

// TestLocalRestoreNeverReplaces: a file that appears at the path after
// Restore looked, just before the move, wins, with renameat2 and with the
// fallback.
func TestLocalRestoreNeverReplaces(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "renameat2"
		if fallback {
			name = "linkat"
		}
		t.Run(name, func(t *testing.T) {
			l, fx := newTrashing(t)
			trash := trashed(t, l, fx, "a/b.jpg", "old")
			local.SetRenameNoReplace(t, func(olddirfd int, oldname string, newdirfd int, newname string) error {
				writeFile(t, fx.in("a/b.jpg"), []byte("new upload"))
				if fallback {
					return syscall.ENOSYS
				}
				return local.RenameNoReplace(olddirfd, oldname, newdirfd, newname)
			})
			wantRestored(t, l, "a/b.jpg", trash, cdccleaner.Occupied)
			if got := string(fx.Read(t, "a/b.jpg")); got != "new upload" {
				t.Errorf("a/b.jpg = %q, want the new upload", got)
			}
			if got := string(fx.Read(t, trash)); got != "old" {
				t.Errorf("trash copy = %q, want %q", got, "old")
			}
		})
	}
}

// TestLocalRestoreParentVanishes: a deletion next to the path prunes the
// parent directory Restore just created; Restore creates it again, a few
// times, then gives up with a transient error.
func TestLocalRestoreParentVanishes(t *testing.T) {
	for _, tt := range []struct {
		name     string
		removals int64
		want     cdccleaner.RestoreOutcome
	}{
		{name: "once", removals: 1, want: cdccleaner.Restored},
		{name: "always", removals: 1 << 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, fx := newTrashing(t)
			trash := trashed(t, l, fx, "a/b.jpg", "b")
			var calls atomic.Int64
			local.SetRenameNoReplace(t, func(olddirfd int, oldname string, newdirfd int, newname string) error {
				if calls.Add(1) <= tt.removals {
					if err := os.Remove(fx.in("a")); err != nil {
						return err
					}
				}
				return local.RenameNoReplace(olddirfd, oldname, newdirfd, newname)
			})
			got, err := restore(t, l, "a/b.jpg", trash)
			if tt.want != 0 {
				if got != tt.want || err != nil {
					t.Fatalf("Restore = %v, %v; want %v", got, err, tt.want)
				}
				if string(fx.Read(t, "a/b.jpg")) != "b" {
					t.Error("restored content differs")
				}
				return
			}
			wantFailed(t, got, err, cdccleaner.ReasonTransient)
			if fx.Exists(t, "a/b.jpg") || string(fx.Read(t, trash)) != "b" {
				t.Error("a failed restore moved the file")
			}
		})
	}
}
