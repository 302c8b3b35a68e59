package deletertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// RestoreStorage is a storage with trash on that can put trashed files
// back.
type RestoreStorage interface {
	cdccleaner.Storage
	cdccleaner.Trasher
	cdccleaner.Restorer
}

// RestoreFixture is a Fixture that can also read a file.
type RestoreFixture interface {
	Fixture
	// Read returns the content of path inside the storage; it fails t
	// when there is no such file.
	Read(t *testing.T, path string) []byte
}

// raceRounds is how often RacesPurge runs a restore against a purge.
const raceRounds = 50

// RunRestoreContract runs the contract of Result.Trash and
// cdccleaner.Restorer against the storages newStorage builds: storages with
// trash on under trashPrefix (e.g. ".trash/"). newStorage is called once
// per subtest and must return an empty storage and its fixture; it
// registers its own cleanup.
func RunRestoreContract(t *testing.T, trashPrefix string, newStorage func(t *testing.T) (RestoreStorage, RestoreFixture)) {
	t.Helper()
	ctx := context.Background()

	t.Run("DeleteReportsTrash", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "photos/cat.jpg", []byte("meow"))
		fx.Put(t, "top.txt", []byte("top"))
		fx.Put(t, trashPrefix+"already.jpg", []byte("trashed before"))
		res := deleteAll(t, s, "photos/cat.jpg", "top.txt", trashPrefix+"already.jpg", "missing.jpg", "../x")
		wantTrash(t, res[0], cdccleaner.Deleted, trashPrefix+"photos/cat.jpg")
		wantTrash(t, res[1], cdccleaner.Deleted, trashPrefix+"top.txt")
		// A path already in the trash is deleted for good.
		wantTrash(t, res[2], cdccleaner.Deleted, "")
		wantTrash(t, res[3], cdccleaner.Absent, "")
		wantTrash(t, res[4], cdccleaner.Failed, "")
		wantContent(t, fx, trashPrefix+"photos/cat.jpg", "meow")
		wantContent(t, fx, trashPrefix+"top.txt", "top")
		for _, p := range []string{"photos/cat.jpg", "top.txt", trashPrefix + "already.jpg", trashPrefix + trashPrefix + "already.jpg"} {
			if fx.Exists(t, p) {
				t.Errorf("%s exists after the delete", p)
			}
		}
	})

	t.Run("AbsentWithTrashedCopy", func(t *testing.T) {
		// A replay after a crash between the move and the journal write:
		// the file is gone from its path, its copy is in the trash.
		s, fx := newStorage(t)
		fx.Put(t, trashPrefix+"a/b.jpg", []byte("b"))
		wantTrash(t, deleteAll(t, s, "a/b.jpg")[0], cdccleaner.Absent, trashPrefix+"a/b.jpg")
		wantContent(t, fx, trashPrefix+"a/b.jpg", "b")
	})

	t.Run("DeleteTwiceKeepsTrash", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "a/b.jpg", []byte("b"))
		wantTrash(t, deleteAll(t, s, "a/b.jpg")[0], cdccleaner.Deleted, trashPrefix+"a/b.jpg")
		wantTrash(t, deleteAll(t, s, "a/b.jpg")[0], cdccleaner.Absent, trashPrefix+"a/b.jpg")
		wantContent(t, fx, trashPrefix+"a/b.jpg", "b")
	})

	t.Run("AbsentPurged", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "a/b.jpg", []byte("b"))
		wantTrash(t, deleteAll(t, s, "a/b.jpg")[0], cdccleaner.Deleted, trashPrefix+"a/b.jpg")
		purgeAll(t, s)
		wantTrash(t, deleteAll(t, s, "a/b.jpg")[0], cdccleaner.Absent, "")
	})

	t.Run("Restore", func(t *testing.T) {
		paths := map[string]string{
			"photos/2024/cat.jpg":          "meow",
			"top.txt":                      "top",
			"d/a+b.txt":                    "plus",
			"fotos/été 2024/ünïcode ✓.jpg": "unicode",
			" leading and trailing ":       "spaces",
		}
		for p, content := range paths {
			t.Run(p, func(t *testing.T) {
				s, fx := newStorage(t)
				fx.Put(t, p, []byte(content))
				// Names a wrong escaping or normalisation would confuse.
				fx.Put(t, "d/a b.txt", []byte("someone else's"))
				r := deleteAll(t, s, p)[0]
				wantTrash(t, r, cdccleaner.Deleted, trashPrefix+p)
				wantRestore(t, s, p, r.Trash, cdccleaner.Restored)
				wantContent(t, fx, p, content)
				if fx.Exists(t, r.Trash) {
					t.Errorf("%s is still in the trash after the restore", r.Trash)
				}
				wantContent(t, fx, "d/a b.txt", "someone else's")
			})
		}
	})

	t.Run("RestoreAfterReplay", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, trashPrefix+"deep/er/file.txt", []byte("f"))
		r := deleteAll(t, s, "deep/er/file.txt")[0]
		wantTrash(t, r, cdccleaner.Absent, trashPrefix+"deep/er/file.txt")
		wantRestore(t, s, "deep/er/file.txt", r.Trash, cdccleaner.Restored)
		wantContent(t, fx, "deep/er/file.txt", "f")
	})

	t.Run("RestoreOccupied", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "a/b.jpg", []byte("old"))
		r := deleteAll(t, s, "a/b.jpg")[0]
		wantTrash(t, r, cdccleaner.Deleted, trashPrefix+"a/b.jpg")
		fx.Put(t, "a/b.jpg", []byte("new upload"))
		wantRestore(t, s, "a/b.jpg", r.Trash, cdccleaner.Occupied)
		wantContent(t, fx, "a/b.jpg", "new upload")
		wantContent(t, fx, r.Trash, "old")
	})

	t.Run("RestoreTwice", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "a/b.jpg", []byte("b"))
		r := deleteAll(t, s, "a/b.jpg")[0]
		wantRestore(t, s, "a/b.jpg", r.Trash, cdccleaner.Restored)
		wantRestore(t, s, "a/b.jpg", r.Trash, cdccleaner.Occupied)
		wantContent(t, fx, "a/b.jpg", "b")
	})

	t.Run("RestoreNotInTrash", func(t *testing.T) {
		s, fx := newStorage(t)
		// Never trashed, in an empty storage and next to other trash.
		wantRestore(t, s, "x/y.jpg", trashPrefix+"x/y.jpg", cdccleaner.NotInTrash)
		fx.Put(t, trashPrefix+"x/other.jpg", []byte("o"))
		wantRestore(t, s, "x/y.jpg", trashPrefix+"x/y.jpg", cdccleaner.NotInTrash)
		// Purged.
		fx.Put(t, "a/b.jpg", []byte("b"))
		r := deleteAll(t, s, "a/b.jpg")[0]
		purgeAll(t, s)
		wantRestore(t, s, "a/b.jpg", r.Trash, cdccleaner.NotInTrash)
		for _, p := range []string{"x/y.jpg", "a/b.jpg"} {
			if fx.Exists(t, p) {
				t.Errorf("%s exists after NotInTrash", p)
			}
		}
	})

	t.Run("RestoreRejectsPaths", func(t *testing.T) {
		trash := trashPrefix + "a.jpg"
		tests := []struct {
			name     string
			p, trash string
		}{
			{name: "p parent", p: "../a.jpg", trash: trash},
			{name: "p absolute", p: "/a.jpg", trash: trash},
			{name: "p empty", p: "", trash: trash},
			{name: "p not canonical", p: "./a.jpg", trash: trash},
			{name: "p NUL byte", p: "a.jpg\x00", trash: trash},
			{name: "trash parent", p: "a.jpg", trash: trashPrefix + "../a.jpg"},
			{name: "trash escaping", p: "a.jpg", trash: "../x"},
			{name: "trash absolute", p: "a.jpg", trash: "/" + trash},
			{name: "trash empty", p: "a.jpg", trash: ""},
			{name: "trash not canonical", p: "a.jpg", trash: trashPrefix + "/a.jpg"},
			{name: "trash outside the trash", p: "a.jpg", trash: "b.jpg"},
			{name: "trash is the trash directory", p: "a.jpg", trash: trashPrefix[:len(trashPrefix)-1]},
			{name: "p inside the trash", p: trashPrefix + "a.jpg", trash: trash},
			{name: "p and trash swapped", p: trash, trash: "a.jpg"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, fx := newStorage(t)
				outside := fx.PutOutside(t, "x")
				fx.Put(t, "a.jpg", []byte("a"))
				fx.Put(t, "b.jpg", []byte("b"))
				wantTrash(t, deleteAll(t, s, "a.jpg")[0], cdccleaner.Deleted, trash)
				got, err := s.Restore(ctx, tt.p, tt.trash)
				if err == nil || !cdccleaner.IsPermanent(err) || cdccleaner.Reason(err) != cdccleaner.ReasonRejectedPath {
					t.Errorf("Restore(%q, %q) = %v, %v; want a permanent rejected_path error", tt.p, tt.trash, got, err)
				}
				wantContent(t, fx, trash, "a")
				wantContent(t, fx, "b.jpg", "b")
				if fx.Exists(t, "a.jpg") || fx.Exists(t, trashPrefix+"b.jpg") {
					t.Error("a rejected restore moved something")
				}
				if !outside() {
					t.Error("a rejected restore removed the object outside the storage")
				}
			})
		}
	})

	t.Run("RestoreCanceled", func(t *testing.T) {
		s, fx := newStorage(t)
		fx.Put(t, "a.jpg", []byte("a"))
		r := deleteAll(t, s, "a.jpg")[0]
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		got, err := s.Restore(cctx, "a.jpg", r.Trash)
		if err == nil || cdccleaner.IsPermanent(err) || !errors.Is(err, context.Canceled) {
			t.Errorf("Restore with a canceled context = %v, %v; want a transient error wrapping context.Canceled", got, err)
		}
		if fx.Exists(t, "a.jpg") || !fx.Exists(t, r.Trash) {
			t.Error("Restore with a canceled context moved the file")
		}
	})

	t.Run("RacesPurge", func(t *testing.T) {
		// The trashed file is old enough to purge: whichever comes
		// first wins, and the loser finds nothing, never half a file.
		s, fx := newStorage(t)
		counts := map[cdccleaner.RestoreOutcome]int{}
		for i := range raceRounds {
			p := fmt.Sprintf("race/%d/file.jpg", i)
			content := fmt.Sprintf("content %d", i)
			fx.Put(t, p, []byte(content))
			r := deleteAll(t, s, p)[0]
			wantTrash(t, r, cdccleaner.Deleted, trashPrefix+p)
			var (
				wg       sync.WaitGroup
				start    = make(chan struct{})
				outcome  cdccleaner.RestoreOutcome
				rerr     error
				purgeErr error
			)
			wg.Go(func() {
				<-start
				outcome, rerr = s.Restore(ctx, p, r.Trash)
			})
			wg.Go(func() {
				<-start
				_, purgeErr = s.PurgeTrash(ctx, time.Now().Add(time.Hour))
			})
			close(start)
			wg.Wait()
			if rerr != nil || purgeErr != nil {
				t.Fatalf("round %d: Restore = %v, %v; PurgeTrash: %v", i, outcome, rerr, purgeErr)
			}
			counts[outcome]++
			switch outcome {
			case cdccleaner.Restored:
				wantContent(t, fx, p, content)
			case cdccleaner.NotInTrash:
				if fx.Exists(t, p) {
					t.Errorf("round %d: NotInTrash, but %s exists", i, p)
				}
			default:
				t.Errorf("round %d: Restore = %v, want restored or not_in_trash", i, outcome)
			}
			if fx.Exists(t, r.Trash) {
				t.Errorf("round %d: %s is still in the trash after Restore = %v and a purge", i, r.Trash, outcome)
			}
			if t.Failed() {
				t.FailNow()
			}
		}
		t.Logf("%d rounds: %d restored, %d not in trash", raceRounds, counts[cdccleaner.Restored], counts[cdccleaner.NotInTrash])
	})
}

// wantTrash checks a result's outcome and Trash, and that Err is set
// exactly when it failed.
func wantTrash(t *testing.T, r cdccleaner.Result, outcome cdccleaner.Outcome, trash string) {
	t.Helper()
	if r.Outcome != outcome || r.Trash != trash || (r.Err != nil) != (outcome == cdccleaner.Failed) {
		t.Errorf("Delete(%q) = %v, Trash %q (err %v); want %v, Trash %q", r.Path, r.Outcome, r.Trash, r.Err, outcome, trash)
	}
}

// wantRestore calls Restore and checks its outcome.
func wantRestore(t *testing.T, s cdccleaner.Restorer, p, trash string, want cdccleaner.RestoreOutcome) {
	t.Helper()
	got, err := s.Restore(context.Background(), p, trash)
	if got != want || err != nil {
		t.Errorf("Restore(%q, %q) = %v, %v; want %v", p, trash, got, err, want)
	}
}

// wantContent checks the content of path.
func wantContent(t *testing.T, fx RestoreFixture, path, want string) {
	t.Helper()
	if !fx.Exists(t, path) {
		t.Errorf("%s does not exist, want %q", path, want)
		return
	}
	if got := string(fx.Read(t, path)); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

// purgeAll purges everything in the trash.
func purgeAll(t *testing.T, s cdccleaner.Trasher) {
	t.Helper()
	if _, err := s.PurgeTrash(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("PurgeTrash: %v", err)
	}
}
