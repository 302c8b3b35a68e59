package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// A removal replayed after a failover or a restart, which the journal
// already holds for the same transaction, is counted as a replay, not as a
// file found absent; a file absent with no such entry is still counted
// absent, and a replayed removal whose file is still there is done now.
func TestReplayedRemovalsAreToldApart(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, "a.jpg", "b.jpg", "c.jpg"))
	w.settle(t, removal(100, "a.jpg", "b.jpg"))
	// The session after: the slot sends transaction 100 again, and 150,
	// whose file someone else removed. c.jpg's removal by 100 was
	// journaled but its move was cut short (its entry is written here by
	// hand): the file is still in place.
	w.journal.Write(t.Context(), []cdccleaner.JournalEntry{{Storage: "media", Path: "c.jpg", Event: cdccleaner.JournalTrashed, Location: ".trash/c.jpg", CommitLSN: 100}})
	w.p.replayHorizon.Store(100)
	w.storage.mu.Lock()
	delete(w.storage.files, "gone.jpg")
	w.storage.mu.Unlock()
	w.settle(t, removal(100, "a.jpg", "b.jpg", "c.jpg"))
	w.settle(t, removal(150, "gone.jpg"))
	absent := testutil.ToFloat64(w.p.cfg.Metrics.Absent.WithLabelValues("media"))
	deleted := testutil.ToFloat64(w.p.cfg.Metrics.Deleted.WithLabelValues("media"))
	if absent != 1 {
		t.Errorf("absent = %v, want 1 (gone.jpg only: the replays of a.jpg and b.jpg are not files found missing)", absent)
	}
	if deleted != 3 {
		t.Errorf("deleted = %v, want 3 (a.jpg, b.jpg once, and c.jpg, whose move the replay completed)", deleted)
	}
	if w.storage.has("c.jpg") {
		t.Error("c.jpg, journaled but not moved, is still in place after the replay")
	}
}

// Without a horizon (a fresh start: the journal holds nothing recent above
// the slot) nothing is looked up and absences count as before.
func TestNoHorizonNoReplays(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, "a.jpg"))
	w.settle(t, removal(100, "a.jpg"))
	w.settle(t, removal(100, "a.jpg"))
	if absent := testutil.ToFloat64(w.p.cfg.Metrics.Absent.WithLabelValues("media")); absent != 1 {
		t.Errorf("absent = %v, want 1", absent)
	}
}

// fakeStandbys records when the standbys were waited for, against the
// storage's moves.
type fakeStandbys struct {
	mu    sync.Mutex
	log   *[]string
	calls int
}

func (f *fakeStandbys) WaitWritten(ctx context.Context, warn func([]string, time.Duration)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	*f.log = append(*f.log, "standbys")
	return nil
}

// orderedStorage logs its deletions in the same log as fakeStandbys.
type orderedStorage struct {
	*memStorage
	log *[]string
}

func (o orderedStorage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	*o.log = append(*o.log, "delete")
	return o.memStorage.Delete(ctx, paths)
}

// The journal's intents reach the standbys before the files move.
func TestStandbysWaitedBeforeFilesMove(t *testing.T) {
	var log []string
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	w.p.cfg.Storages["media"] = orderedStorage{st, &log}
	sb := &fakeStandbys{log: &log}
	w.p.cfg.Standbys = sb
	w.settle(t, removal(100, "a.jpg"))
	if !slices.Equal(log, []string{"standbys", "delete"}) {
		t.Errorf("order = %q, want the standbys waited for, then the delete", log)
	}
	// A dry run writes no journal and waits for nothing.
	w.p.cfg.DryRun = true
	if err := w.p.waitStandbys(t.Context(), w.p.prepare(removal(200, "b.jpg"))); err != nil || sb.calls != 1 {
		t.Errorf("dry run: waited %d times (err %v), want no new wait", sb.calls-1, err)
	}
}
