package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
)

func sortedKeys(m map[string]cdccleaner.File) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestLocalList(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret.txt"), "secret")
	write(t, filepath.Join(root, "a.jpg"), "aa")
	write(t, filepath.Join(root, "dir/sub/b.jpg"), "bbb")
	write(t, filepath.Join(root, "été ✓/with space.jpg"), "c")
	write(t, filepath.Join(root, ".trash/old.jpg"), "trashed")
	write(t, filepath.Join(root, "dir/.trash/not-the-trash.jpg"), "x")
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a.jpg"), filepath.Join(root, "linkfile")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "a.jpg"), old, old); err != nil {
		t.Fatal(err)
	}
	l, err := local.New(root, local.Options{TrashPrefix: ".trash/"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	got := deletertest.ListAll(t, l)
	want := []string{"a.jpg", "dir/.trash/not-the-trash.jpg", "dir/sub/b.jpg", "été ✓/with space.jpg"}
	if !slices.Equal(sortedKeys(got), want) {
		t.Fatalf("listed %q, want %q", sortedKeys(got), want)
	}
	if f := got["a.jpg"]; f.Size != 2 || !f.ModTime.Equal(old) {
		t.Errorf("a.jpg = %+v, want size 2, mtime %v", f, old)
	}
	if f := got["dir/sub/b.jpg"]; f.Size != 3 {
		t.Errorf("dir/sub/b.jpg size %d, want 3", f.Size)
	}

	st, err := l.Stat("a.jpg")
	if err != nil || st.Size != 2 || !st.ModTime.Equal(old) {
		t.Errorf("Stat(a.jpg) = %+v, %v", st, err)
	}
	for _, p := range []string{"missing", "linkfile", "dir", "../x"} {
		if _, err := l.Stat(p); err == nil {
			t.Errorf("Stat(%q) succeeded", p)
		}
	}
	if _, err := l.Stat("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want not exist", err)
	}

	// fn's error stops the listing and is returned.
	stop := errors.New("stop")
	n := 0
	if err := l.List(context.Background(), func(cdccleaner.File) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("List with failing fn = %v after %d calls", err, n)
	}
}

// TestLocalListLargeDirectory: a directory bigger than one read chunk is
// listed completely.
func TestLocalListLargeDirectory(t *testing.T) {
	root := t.TempDir()
	const n = 2500
	for i := range n {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := local.New(root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := len(deletertest.ListAll(t, l)); got != n {
		t.Errorf("listed %d files, want %d", got, n)
	}
}

func TestLocalListUnreadableDirectory(t *testing.T) {
	if os.Geteuid() == 0 && os.Getenv("CDC_TEST_AS_NOBODY") == "" {
		// Root reads any directory: run this test again as nobody.
		runAsNobody(t, "TestLocalListUnreadableDirectory")
		return
	}
	root := t.TempDir()
	write(t, filepath.Join(root, "locked/a.jpg"), "a")
	if err := os.Chmod(filepath.Join(root, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "locked"), 0o755) })
	l, err := local.New(root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.List(context.Background(), func(cdccleaner.File) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "locked") || !errors.Is(err, os.ErrPermission) {
		t.Errorf("List over an unreadable directory = %v, want a permission error naming it", err)
	}
}

// runAsNobody runs the test named name again in a copy of this test binary
// as user nobody (setpriv, from util-linux), for cases that root's
// privileges would hide. The test temp dir of the child is its own.
func runAsNobody(t *testing.T, name string) {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv not found (apt-get install util-linux): it runs this test as nobody, since root reads any directory")
	}
	// The binary may sit in a directory only root can enter: copy it.
	dir, err := os.MkdirTemp("", "cdc-cleaner-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "test.bin")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o777)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^"+name+"$", "-test.v")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "CDC_TEST_AS_NOBODY=1", "TMPDIR="+tmp, "HOME="+tmp, "GOCOVERDIR=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as nobody: %v\n%s", name, err, out)
	}
}
