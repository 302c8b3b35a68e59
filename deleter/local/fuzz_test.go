package local_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

// fuzzTrashPrefix is where the trashing Local of the fuzz test moves files.
const fuzzTrashPrefix = ".trash/"

// fuzzTime is the modification time of every file and directory of a fresh
// tree, so that a rebuilt tree looks like the first one.
var fuzzTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// fuzzTree builds, in the empty directory dir, a root with files,
// directories, a FIFO and symlinks pointing inside and outside it, plus
// files outside the root. It returns the root.
func fuzzTree(tb testing.TB, dir string) (root string) {
	tb.Helper()
	root = filepath.Join(dir, "root")
	for _, f := range []string{
		"root/file", "root/dir/file", "root/dir/sub/file", "root/x",
		"root/fotos/été 2024/ünïcode ✓.jpg", `root/..\x`, "root/%2e%2e/x", "root/a b/c.jpg",
		"x", "outside/sentinel", "outside/sub/deep", "root-sibling/file",
	} {
		writeFile(tb, filepath.Join(dir, filepath.FromSlash(f)), []byte(f))
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, l := range [][2]string{
		{filepath.Join(dir, "outside"), "root/evil"},             // absolute, outside
		{"../outside", "root/evilrel"},                           // relative, outside
		{filepath.Join(dir, "outside/sentinel"), "root/outfile"}, // file outside
		{"../x", "root/upx"},                                     // relative file outside
		{"evil", "root/chain"},                                   // a link to a link outside
		{"..", "root/up"},                                        // the root's parent
		{"../root-sibling", "root/sib"},                          // prefix lookalike
		{".", "root/self"},                                       // the root itself
		{"dir", "root/indir"},                                    // directory inside
		{"file", "root/inlink"},                                  // file inside
		{filepath.Join(root, "dir"), "root/absin"},               // absolute, inside
		{"nowhere", "root/dangling"},
		{"loop", "root/loop"},
		{"../..", "root/dir/up2"},                              // climbs out from a subdirectory
		{"../../../outside/sentinel", "root/dir/sub/deeplink"}, // file outside, from deep inside
	} {
		if err := os.Symlink(l[0], filepath.Join(dir, filepath.FromSlash(l[1]))); err != nil {
			tb.Fatal(err)
		}
	}
	// Fixed times, set after every entry is made (making one changes its
	// parent's time); a symlink keeps its own, which is not compared.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, fuzzTime, fuzzTime)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// entry is what snapshot records of one directory entry.
type entry struct {
	// desc is the type and permissions, and the content of a file or the
	// target of a symlink: what a restored tree must reproduce.
	desc  string
	mtime time.Time // of files and directories; zero for symlinks
	// ino, ctime and nlink change when anything at all is done to the entry
	// (written, renamed, chmod-ed, linked or unlinked); a rebuilt tree has
	// new ones.
	ino   uint64
	ctime syscall.Timespec
	nlink uint64
}

func (e entry) isDir() bool { return strings.HasPrefix(e.desc, "dir ") }

// same reports whether nothing at all was done to the entry.
func (e entry) same(o entry) bool {
	return e.desc == o.desc && e.mtime.Equal(o.mtime) && e.ino == o.ino && e.ctime == o.ctime && e.nlink == o.nlink
}

// snapshot records every entry under dir, dir included, never following
// symlinks.
func snapshot(tb testing.TB, dir string) map[string]entry {
	tb.Helper()
	snap := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info() // lstat
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		e := entry{ino: st.Ino, ctime: st.Ctim, nlink: uint64(st.Nlink)}
		mode := info.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.desc = "link " + target
		case mode.IsDir():
			e.desc, e.mtime = fmt.Sprintf("dir %v", mode.Perm()), info.ModTime()
		case mode.IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.desc, e.mtime = fmt.Sprintf("file %v %q", mode.Perm(), data), info.ModTime()
		default: // the FIFO: never opened
			e.desc, e.mtime = fmt.Sprintf("other %v", mode), info.ModTime()
		}
		snap[p] = e
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", dir, err)
	}
	return snap
}

// sameTree reports whether two snapshots hold the same entries with the
// same descriptions and modification times.
func sameTree(a, b map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	for p, ea := range a {
		eb, ok := b[p]
		if !ok || ea.desc != eb.desc || !ea.mtime.Equal(eb.mtime) {
			return false
		}
	}
	return true
}

// restoreTree rebuilds the tree in dir unless snap, its current snapshot,
// matches pristine, and returns the snapshot of the tree as it now is. It
// never follows symlinks (os.RemoveAll does not).
func restoreTree(tb testing.TB, dir string, snap, pristine map[string]entry) map[string]entry {
	tb.Helper()
	if sameTree(snap, pristine) {
		return snap
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	fuzzTree(tb, dir)
	snap = snapshot(tb, dir)
	if !sameTree(snap, pristine) {
		tb.Fatal("the rebuilt tree differs from the first one")
	}
	return snap
}

// validBySpec is ValidatePath's specification, written independently.
func validBySpec(p string) bool {
	if p == "" || p == "." || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") || path.Clean(p) != p {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return false
		}
	}
	return true
}

// FuzzValidatePathConfined deletes a fuzzed path from a Local on a real
// tree (fuzzTree: symlinks to outside and inside the root, a FIFO), once
// removing and once trashing, both pruning empty directories, then
// restores what it trashed, trashes it again and purges the trash. It
// checks that:
//
//   - ValidatePath accepts exactly the relative, clean, NUL-free paths
//     without ".." segments, and rejects the others as permanent
//     rejected_path errors;
//   - a rejected path changes nothing at all, not even a time stamp;
//   - nothing outside the root is removed, created or touched (inode,
//     ctime, mtime, link count, content, symlink target), and the root
//     stays, the same directory;
//   - inside the root, at most one non-directory entry goes, named like the
//     path's last segment, and it goes exactly when the result says
//     Deleted; otherwise only directories change (pruned, or their times);
//   - a trashed entry reappears under the trash prefix, the same file or
//     link, and the trash is the only place where entries appear;
//     Result.Trash names it, and is empty for anything not trashed;
//   - restoring it puts the same entry back where it was, and the tree
//     looks as before, apart from the trash;
//   - purging the trash removes what is in it and nothing else.
//
// The seeds, hostile paths aimed at the tree fuzzTree builds, are in
// testdata/fuzz/FuzzValidatePathConfined.
//
// The tree is built once per process and rebuilt only after an input
// changed it: file system calls are the cost of each run.
func FuzzValidatePathConfined(f *testing.F) {
	dir := f.TempDir()
	root := fuzzTree(f, dir)
	pristine := snapshot(f, dir)
	current := pristine
	f.Fuzz(func(t *testing.T, p string) {
		verr := cdccleaner.ValidatePath(p)
		if (verr == nil) != validBySpec(p) {
			t.Fatalf("ValidatePath(%q) = %v, but the specification says valid=%v", p, verr, validBySpec(p))
		}
		if verr != nil && (!cdccleaner.IsPermanent(verr) || cdccleaner.Reason(verr) != cdccleaner.ReasonRejectedPath) {
			t.Fatalf("ValidatePath(%q) = %v, want a permanent rejected_path error", p, verr)
		}
		for _, trash := range []bool{false, true} {
			before := restoreTree(t, dir, current, pristine)
			current = before
			opts := local.Options{PruneEmptyDirs: true}
			if trash {
				opts.Trash, opts.TrashPrefix = true, fuzzTrashPrefix
			}
			l, err := local.New(root, opts)
			if err != nil {
				t.Fatal(err)
			}
			res := l.Delete(context.Background(), []string{p})
			current = snapshot(t, dir)
			if len(res) != 1 || res[0].Path != p {
				l.Close()
				t.Fatalf("Delete(%q) = %+v, want one result for it", p, res)
			}
			r := res[0]
			checkDeleted(t, p, trash, root, verr, r, before, current)
			if r.Trash != "" {
				// Back from the trash, then into it again for the purge.
				got, err := l.Restore(context.Background(), p, r.Trash)
				restored := snapshot(t, dir)
				checkRestored(t, p, r.Trash, root, got, err, before, restored)
				again := l.Delete(context.Background(), []string{p})[0]
				current = snapshot(t, dir)
				if again.Outcome != cdccleaner.Deleted || again.Trash != r.Trash {
					l.Close()
					t.Fatalf("trash %q again after the restore = %v, Trash %q (err %v); want deleted, Trash %q", p, again.Outcome, again.Trash, again.Err, r.Trash)
				}
			}
			if trash {
				if _, err := l.PurgeTrash(context.Background(), time.Now().Add(time.Hour)); err != nil {
					t.Errorf("PurgeTrash after Delete(%q): %v", p, err)
				}
				purged := snapshot(t, dir)
				checkPurged(t, p, root, current, purged)
				current = purged
			}
			l.Close()
		}
	})
}

// checkDeleted checks what Delete(p) did to the tree (before -> after) and
// said it did (r).
func checkDeleted(t *testing.T, p string, trash bool, root string, verr error, r cdccleaner.Result, before, after map[string]entry) {
	t.Helper()
	how := "delete"
	if trash {
		how = "trash"
	}
	if (r.Err != nil) != (r.Outcome == cdccleaner.Failed) {
		t.Fatalf("%s %q = %v with err %v", how, p, r.Outcome, r.Err)
	}
	if verr != nil {
		if r.Outcome != cdccleaner.Failed || cdccleaner.Reason(r.Err) != cdccleaner.ReasonRejectedPath {
			t.Fatalf("%s %q, a rejected path = %v, %v", how, p, r.Outcome, r.Err)
		}
		for q, was := range before {
			if now, ok := after[q]; !ok || !now.same(was) {
				t.Errorf("%s %q, a rejected path, changed %s: %+v -> %+v", how, p, q, was, now)
			}
		}
	}
	inRoot := func(q string) bool { return strings.HasPrefix(q, root+string(filepath.Separator)) }
	trashDir := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(fuzzTrashPrefix, "/")))
	inTrash := func(q string) bool { return q == trashDir || strings.HasPrefix(q, trashDir+string(filepath.Separator)) }

	if now, ok := after[root]; !ok || !now.isDir() || now.ino != before[root].ino {
		t.Fatalf("%s %q replaced or removed the root: %+v -> %+v", how, p, before[root], now)
	}
	var gone []string // non-directory entries removed
	for q, was := range before {
		now, ok := after[q]
		switch {
		case q != root && !inRoot(q):
			if !ok || !now.same(was) {
				t.Errorf("%s %q changed %s outside the root: %+v -> %+v", how, p, q, was, now)
			}
		case !ok && !was.isDir():
			gone = append(gone, q)
		case ok && !was.isDir() && !now.same(was):
			t.Errorf("%s %q changed %s (%+v -> %+v), not removed", how, p, q, was, now)
		case ok && was.desc != now.desc:
			t.Errorf("%s %q changed %s: %q -> %q", how, p, q, was.desc, now.desc)
		}
	}
	var created []string
	for q := range after {
		if _, ok := before[q]; !ok {
			created = append(created, q)
			if !trash || !inTrash(q) {
				t.Errorf("%s %q created %s", how, p, q)
			}
		}
	}
	if len(gone) > 1 {
		t.Fatalf("%s %q removed %d entries: %q", how, p, len(gone), gone)
	}
	if (len(gone) == 1) != (r.Outcome == cdccleaner.Deleted) {
		t.Fatalf("%s %q = %v (%v) but removed %q", how, p, r.Outcome, r.Err, gone)
	}
	if len(gone) == 1 && filepath.Base(gone[0]) != path.Base(p) {
		t.Fatalf("%s %q removed %s, another name", how, p, gone[0])
	}
	wantTrash := ""
	if trash && r.Outcome == cdccleaner.Deleted && !strings.HasPrefix(p, fuzzTrashPrefix) {
		wantTrash = fuzzTrashPrefix + p
	}
	if r.Trash != wantTrash {
		t.Fatalf("%s %q = %v, Trash %q; want Trash %q", how, p, r.Outcome, r.Trash, wantTrash)
	}
	if r.Outcome != cdccleaner.Deleted {
		if len(created) > 0 {
			t.Fatalf("%s %q = %v but created %q", how, p, r.Outcome, created)
		}
		return
	}
	if trash && !strings.HasPrefix(p, fuzzTrashPrefix) {
		moved, ok := after[filepath.Join(trashDir, filepath.FromSlash(p))]
		if !ok || moved.desc != before[gone[0]].desc || moved.ino != before[gone[0]].ino {
			t.Fatalf("trash %q: %s is not in the trash (%+v)", p, gone[0], moved)
		}
	}
}

// checkRestored checks that restoring p from trash (a tree before it was
// trashed -> after the restore) put the same entry back: every entry of
// the tree before is there again, the non-directories the same inode with
// the same type, permissions and content or target; only the trash has
// entries the tree before did not.
func checkRestored(t *testing.T, p, trash, root string, got cdccleaner.RestoreOutcome, err error, before, after map[string]entry) {
	t.Helper()
	if got != cdccleaner.Restored || err != nil {
		t.Fatalf("restore %q from %q = %v, %v; want restored", p, trash, got, err)
	}
	trashDir := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(fuzzTrashPrefix, "/")))
	for q, was := range before {
		now, ok := after[q]
		switch {
		case !ok:
			t.Errorf("restore %q: %s is missing", p, q)
		case !was.isDir() && (now.desc != was.desc || now.ino != was.ino):
			t.Errorf("restore %q: %s is %+v, was %+v", p, q, now, was)
		}
	}
	for q := range after {
		if _, ok := before[q]; !ok && q != trashDir && !strings.HasPrefix(q, trashDir+string(filepath.Separator)) {
			t.Errorf("restore %q created %s", p, q)
		}
	}
}

// checkPurged checks that purging the trash (before -> after) removed what
// was in it and nothing else.
func checkPurged(t *testing.T, p, root string, before, after map[string]entry) {
	t.Helper()
	trashDir := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(fuzzTrashPrefix, "/")))
	for q, was := range before {
		now, ok := after[q]
		switch {
		case strings.HasPrefix(q, trashDir+string(filepath.Separator)):
			if ok {
				t.Errorf("purge after trash %q left %s", p, q)
			}
		case q == root:
			if !ok || now.desc != was.desc || now.ino != was.ino {
				t.Errorf("purge after trash %q changed the root: %+v -> %+v", p, was, now)
			}
		case q == trashDir: // pruned once empty, or kept
			if ok && (now.desc != was.desc || now.ino != was.ino) {
				t.Errorf("purge after trash %q changed %s: %+v -> %+v", p, q, was, now)
			}
		case !ok || !now.same(was):
			t.Errorf("purge after trash %q changed %s: %+v -> %+v", p, q, was, now)
		}
	}
	if len(after) > len(before) {
		t.Errorf("purge after trash %q created entries", p)
	}
}
