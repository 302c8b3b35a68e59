package deleter_test

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

// fuzzTree builds, in the empty directory dir, a root with files,
// directories and symlinks pointing inside and outside it, plus files
// outside the root. It returns the root.
func fuzzTree(tb testing.TB, dir string) (root string) {
	tb.Helper()
	root = filepath.Join(dir, "root")
	for _, f := range []string{
		"root/file", "root/dir/file", "root/dir/sub/file", "root/x",
		"root/fotos/été 2024/ünïcode ✓.jpg", `root/..\x`,
		"x", "outside/sentinel", "outside/sub/deep", "root-sibling/file",
	} {
		writeFile(tb, filepath.Join(dir, filepath.FromSlash(f)), []byte(f))
	}
	for _, l := range [][2]string{
		{filepath.Join(dir, "outside"), "root/evil"},             // absolute, outside
		{"../outside", "root/evilrel"},                           // relative, outside
		{filepath.Join(dir, "outside/sentinel"), "root/outfile"}, // file outside
		{"..", "root/up"},                                        // the root's parent
		{"../root-sibling", "root/sib"},                          // prefix lookalike
		{".", "root/self"},                                       // the root itself
		{"dir", "root/indir"},                                    // directory inside
		{"file", "root/inlink"},                                  // file inside
		{"nowhere", "root/dangling"},
		{"loop", "root/loop"},
		{"../..", "root/dir/up2"}, // climbs out from a subdirectory
	} {
		if err := os.Symlink(l[0], filepath.Join(dir, filepath.FromSlash(l[1]))); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

// restoreTree rebuilds the tree in dir if it differs from pristine. It never
// follows symlinks (os.RemoveAll does not).
func restoreTree(tb testing.TB, dir string, pristine map[string]string) {
	tb.Helper()
	if maps.Equal(snapshot(tb, dir), pristine) {
		return
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
}

// snapshot records every entry under dir (not following symlinks): its type,
// and the target of a symlink or the content of a file.
func snapshot(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			snap[p] = "link:" + target
		case d.IsDir():
			snap[p] = "dir"
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			snap[p] = "file:" + string(data)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", dir, err)
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

// FuzzValidatePathConfined deletes fuzzed paths from a Local (with pruning
// on) and checks that nothing outside the root changes, that the root stays,
// that a rejected path changes nothing at all, and that ValidatePath accepts
// exactly the relative, clean, NUL-free paths without ".." segments.
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
	f.Fuzz(func(t *testing.T, p string) {
		verr := deleter.ValidatePath(p)
		if (verr == nil) != validBySpec(p) {
			t.Fatalf("ValidatePath(%q) = %v, but the specification says valid=%v", p, verr, validBySpec(p))
		}
		if verr != nil && (!deleter.IsPermanent(verr) || deleter.Reason(verr) != deleter.ReasonRejectedPath) {
			t.Fatalf("ValidatePath(%q) = %v, want a permanent rejected_path error", p, verr)
		}

		defer restoreTree(t, dir, pristine)
		l, err := deleter.NewLocal(root, deleter.LocalOptions{PruneEmptyDirs: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		res := l.Delete(context.Background(), []string{p})
		if len(res) != 1 || res[0].Path != p {
			t.Fatalf("Delete(%q) = %+v, want one result for it", p, res)
		}
		r := res[0]
		if (r.Err != nil) != (r.Outcome == cdccleaner.Failed) {
			t.Fatalf("Delete(%q) = %v with err %v", p, r.Outcome, r.Err)
		}
		if verr != nil && (r.Outcome != cdccleaner.Failed || deleter.Reason(r.Err) != deleter.ReasonRejectedPath) {
			t.Fatalf("Delete(%q) of a rejected path = %v, %v", p, r.Outcome, r.Err)
		}

		after := snapshot(t, dir)
		if _, ok := after[root]; !ok {
			t.Fatalf("Delete(%q) removed the root", p)
		}
		inRoot := func(q string) bool { return strings.HasPrefix(q, root+string(filepath.Separator)) }
		for q, was := range pristine {
			now, ok := after[q]
			switch {
			case verr != nil && now != was:
				t.Errorf("Delete(%q) of a rejected path changed %s: %q -> %q", p, q, was, now)
			case !inRoot(q) && (!ok || now != was):
				t.Errorf("Delete(%q) changed %s outside the root: %q -> %q", p, q, was, now)
			}
		}
		if len(after) > len(pristine) {
			t.Errorf("Delete(%q) created entries", p)
		}
	})
}
