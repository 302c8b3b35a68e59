// Package deletertest holds the contract every cdccleaner.Storage must pass,
// run by each storage's tests against its own fixture.
package deletertest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Fixture gives the contract direct access to the storage under test,
// bypassing the Storage interface, so it can set up files and check what
// survived.
type Fixture interface {
	// Put stores data at path inside the storage (under its root or
	// prefix), creating parent directories as needed. path is valid.
	Put(t *testing.T, path string, data []byte)
	// Exists reports whether path exists inside the storage.
	Exists(t *testing.T, path string) bool
	// PutOutside stores an object named name just outside the storage:
	// where a naive implementation would land for the path "../"+name
	// (local: next to the root directory; S3: the key name without the
	// prefix). The returned function reports whether it still exists.
	PutOutside(t *testing.T, name string) (exists func() bool)
}

// CannotTellAbsent is implemented by fixtures of storages that cannot tell
// a missing file from a deleted one (S3's DeleteObjects answers the same for
// both) and so report Deleted for both; the contract then accepts Deleted
// where it would want Absent. Either way, deleting a missing file succeeds.
type CannotTellAbsent interface {
	CannotTellAbsent() bool
}

// RunStorageContract runs the contract of cdccleaner.Storage against the
// storages newStorage builds. newStorage is called once per subtest and must
// return an empty storage and its fixture; it registers its own cleanup.
func RunStorageContract(t *testing.T, newStorage func(t *testing.T) (cdccleaner.Storage, Fixture)) {
	t.Helper()

	t.Run("DeleteExisting", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "photos/cat.jpg", []byte("meow"))
		res := deleteAll(t, s, "photos/cat.jpg")
		wantOutcome(t, fx, res[0], cdccleaner.Deleted)
		if fx.Exists(t, "photos/cat.jpg") {
			t.Error("photos/cat.jpg still exists after Deleted")
		}
	})

	t.Run("DeleteTopLevel", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "top.txt", []byte("x"))
		res := deleteAll(t, s, "top.txt")
		wantOutcome(t, fx, res[0], cdccleaner.Deleted)
		if fx.Exists(t, "top.txt") {
			t.Error("top.txt still exists after Deleted")
		}
	})

	t.Run("DeleteMissing", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "photos/dog.jpg", []byte("woof"))
		for _, p := range []string{"photos/cat.jpg", "missing.txt", "no/such/dir/file.txt"} {
			res := deleteAll(t, s, p)
			wantOutcome(t, fx, res[0], cdccleaner.Absent)
		}
		if !fx.Exists(t, "photos/dog.jpg") {
			t.Error("photos/dog.jpg was deleted by deletes of other paths")
		}
	})

	t.Run("DeleteTwiceIsIdempotent", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "a/b.txt", []byte("b"))
		wantOutcome(t, fx, deleteAll(t, s, "a/b.txt")[0], cdccleaner.Deleted)
		wantOutcome(t, fx, deleteAll(t, s, "a/b.txt")[0], cdccleaner.Absent)
	})

	t.Run("EmptyBatch", func(t *testing.T) {
		s, fx := newStorage(t)
		_ = fx
		if res := s.Delete(context.Background(), nil); len(res) != 0 {
			t.Fatalf("Delete(nil) = %d results, want 0", len(res))
		}
	})

	t.Run("MixedBatchKeepsOrder", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "m/1.txt", []byte("1"))
		fx.Put(t, "m/3.txt", []byte("3"))
		fx.Put(t, "m/5.txt", []byte("5"))
		paths := []string{"m/1.txt", "m/2.txt", "m/3.txt", "../escape", "m/4.txt", "m/5.txt"}
		want := []cdccleaner.Outcome{
			cdccleaner.Deleted, cdccleaner.Absent, cdccleaner.Deleted,
			cdccleaner.Failed, cdccleaner.Absent, cdccleaner.Deleted,
		}
		res := deleteAll(t, s, paths...)
		for i := range res {
			wantOutcome(t, fx, res[i], want[i])
		}
		for _, p := range []string{"m/1.txt", "m/3.txt", "m/5.txt"} {
			if fx.Exists(t, p) {
				t.Errorf("%s still exists after Deleted", p)
			}
		}
	})

	t.Run("SiblingsSurvive", func(t *testing.T) {
		s, fx := newStorage(t)
		// Names that a prefix match, a case-insensitive match or a
		// Unicode normalisation would confuse with the deleted one.
		survivors := []string{
			"dir/photo.jpg.thumb", "dir/photo.jp", "dir/Photo.jpg",
			"dir2/photo.jpg", "photo.jpg",
			"dir/caf\u0065\u0301.jpg", // "café" decomposed
		}
		fx.Put(t, "dir/photo.jpg", []byte("x"))
		fx.Put(t, "dir/caf\u00e9.jpg", []byte("x")) // "café" precomposed
		for _, p := range survivors {
			fx.Put(t, p, []byte("keep"))
		}
		res := deleteAll(t, s, "dir/photo.jpg", "dir/caf\u00e9.jpg")
		wantOutcome(t, fx, res[0], cdccleaner.Deleted)
		wantOutcome(t, fx, res[1], cdccleaner.Deleted)
		for _, p := range survivors {
			if !fx.Exists(t, p) {
				t.Errorf("%q was deleted along with dir/photo.jpg", p)
			}
		}
	})

	t.Run("UnicodeAndSpaces", func(t *testing.T) {
		s, fx := newStorage(t)
		paths := []string{
			"fotos/été 2024/ünïcode ✓.jpg",
			"with space.txt",
			" leading and trailing ",
			"日本語/ファイル.png",
			"emoji/🎉.gif",
			"file name with 'quotes' and \"double\".txt",
			"percent%20encoded+plus&amp.txt",
			"...dots", "a/..b", "a/b..",
		}
		for _, p := range paths {
			fx.Put(t, p, []byte(p))
		}
		res := deleteAll(t, s, paths...)
		for i, p := range paths {
			wantOutcome(t, fx, res[i], cdccleaner.Deleted)
			if fx.Exists(t, p) {
				t.Errorf("%q still exists after Deleted", p)
			}
		}
	})

	t.Run("HostilePaths", func(t *testing.T) {
		tests := []struct {
			name   string
			path   string
			inside []string // files a normalising implementation could hit
		}{
			{name: "parent", path: "../x"},
			{name: "parent after segment", path: "a/../../x", inside: []string{"a/f"}},
			{name: "deep parent", path: "a/b/../../../x", inside: []string{"a/b/f"}},
			{name: "parent inside", path: "a/../b", inside: []string{"b"}},
			{name: "trailing parent", path: "a/..", inside: []string{"a/f"}},
			{name: "dot dot", path: ".."},
			{name: "absolute", path: "/etc/passwd", inside: []string{"etc/passwd"}},
			{name: "absolute outside", path: "/../x"},
			{name: "slash", path: "/"},
			{name: "empty", path: ""},
			{name: "dot", path: "."},
			{name: "NUL byte", path: "a\x00b", inside: []string{"a", "ab"}},
			{name: "trailing NUL", path: "a\x00", inside: []string{"a"}},
			{name: "double slash", path: "a//b", inside: []string{"a/b"}},
			{name: "dot prefix", path: "./a", inside: []string{"a"}},
			{name: "dot segment", path: "a/./b", inside: []string{"a/b"}},
			{name: "trailing slash", path: "a/", inside: []string{"a"}},
			{name: "trailing dot", path: "a/.", inside: []string{"a/f"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, fx := newStorage(t)
				outside := fx.PutOutside(t, "x")
				for _, p := range tt.inside {
					fx.Put(t, p, []byte("keep"))
				}
				res := deleteAll(t, s, tt.path)
				wantOutcome(t, fx, res[0], cdccleaner.Failed)
				if !cdccleaner.IsPermanent(res[0].Err) {
					t.Errorf("Delete(%q) error %v is not permanent", tt.path, res[0].Err)
				}
				if got := cdccleaner.Reason(res[0].Err); got != cdccleaner.ReasonRejectedPath {
					t.Errorf("Delete(%q) reason = %q, want %q", tt.path, got, cdccleaner.ReasonRejectedPath)
				}
				if !outside() {
					t.Errorf("Delete(%q) removed the object outside the storage", tt.path)
				}
				for _, p := range tt.inside {
					if !fx.Exists(t, p) {
						t.Errorf("Delete(%q) removed %q", tt.path, p)
					}
				}
			})
		}
	})

	t.Run("HostilePathsInBatch", func(t *testing.T) {
		s, fx := newStorage(t)
		outside := fx.PutOutside(t, "x")
		fx.Put(t, "ok/1", []byte("1"))
		fx.Put(t, "ok/2", []byte("2"))
		res := deleteAll(t, s, "ok/1", "../x", "", "ok//2", "ok/2")
		want := []cdccleaner.Outcome{cdccleaner.Deleted, cdccleaner.Failed, cdccleaner.Failed, cdccleaner.Failed, cdccleaner.Deleted}
		for i := range res {
			wantOutcome(t, fx, res[i], want[i])
		}
		if !outside() {
			t.Error("the object outside the storage was removed")
		}
	})

	t.Run("LargeBatch", func(t *testing.T) {
		s, fx := newStorage(t)
		const n = 2500
		paths := make([]string, n)
		for i := range paths {
			paths[i] = fmt.Sprintf("large/%02d/file-%04d.bin", i%50, i)
			if i%2 == 0 {
				fx.Put(t, paths[i], []byte{byte(i)})
			}
		}
		res := deleteAll(t, s, paths...)
		for i := range res {
			want := cdccleaner.Absent
			if i%2 == 0 {
				want = cdccleaner.Deleted
			}
			wantOutcome(t, fx, res[i], want)
			if t.Failed() {
				t.FailNow() // one mismatch is enough; 2,500 lines are not
			}
		}
		for i := 0; i < n; i += 2 {
			if fx.Exists(t, paths[i]) {
				t.Fatalf("%s still exists after Deleted", paths[i])
			}
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s, fx := newStorage(t)
		paths := []string{"c/1", "c/2", "c/3"}
		for _, p := range paths {
			fx.Put(t, p, []byte("x"))
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := s.Delete(ctx, paths)
		wantResults(t, res, paths)
		for _, r := range res {
			wantOutcome(t, fx, r, cdccleaner.Failed)
			if cdccleaner.IsPermanent(r.Err) {
				t.Errorf("%s: error after cancel %v is permanent, want transient", r.Path, r.Err)
			}
			if !errors.Is(r.Err, context.Canceled) {
				t.Errorf("%s: error after cancel %v does not wrap context.Canceled", r.Path, r.Err)
			}
		}
	})
}

// deleteAll calls s.Delete with a background context and checks that it
// returned one result per path, in order.
func deleteAll(t *testing.T, s cdccleaner.Storage, paths ...string) []cdccleaner.Result {
	t.Helper()
	res := s.Delete(context.Background(), paths)
	wantResults(t, res, paths)
	return res
}

// wantResults checks that res has one result per path, in order.
func wantResults(t *testing.T, res []cdccleaner.Result, paths []string) {
	t.Helper()
	if len(res) != len(paths) {
		t.Fatalf("Delete(%d paths) returned %d results", len(paths), len(res))
	}
	for i := range res {
		if res[i].Path != paths[i] {
			t.Fatalf("result %d is for %q, want %q", i, res[i].Path, paths[i])
		}
	}
}

// wantOutcome checks a result's outcome and that Err is set exactly when it
// failed.
func wantOutcome(t *testing.T, fx Fixture, r cdccleaner.Result, want cdccleaner.Outcome) {
	t.Helper()
	if c, ok := fx.(CannotTellAbsent); ok && c.CannotTellAbsent() && want == cdccleaner.Absent && r.Outcome == cdccleaner.Deleted {
		want = cdccleaner.Deleted
	}
	if r.Outcome != want {
		t.Errorf("Delete(%q) = %v (err %v), want %v", r.Path, r.Outcome, r.Err, want)
		return
	}
	if (r.Err != nil) != (want == cdccleaner.Failed) {
		t.Errorf("Delete(%q) = %v with err %v", r.Path, r.Outcome, r.Err)
	}
}

// ListAll returns l's listing as path => file, failing t on an error or a
// path listed twice.
func ListAll(t *testing.T, l cdccleaner.Lister) map[string]cdccleaner.File {
	t.Helper()
	out := map[string]cdccleaner.File{}
	err := l.List(context.Background(), func(f cdccleaner.File) error {
		if _, dup := out[f.Path]; dup {
			t.Errorf("%s listed twice", f.Path)
		}
		out[f.Path] = f
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return out
}
