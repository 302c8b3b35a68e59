package scan_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

// trashStore is store with a trash: Delete moves files to ".trash/", and
// Restore moves them back. onDelete, when set, runs after the move, while
// the batch is being removed.
type trashStore struct {
	*store
	ev       *[]string
	onDelete func()
	trashed  map[string]cdccleaner.File
}

func (s *trashStore) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	*s.ev = append(*s.ev, "delete")
	kept := map[string]cdccleaner.File{}
	for _, f := range s.files {
		kept[f.Path] = f
	}
	out := s.store.Delete(ctx, paths)
	for i := range out {
		if out[i].Outcome == cdccleaner.Deleted {
			out[i].Trash = ".trash/" + out[i].Path
			s.trashed[out[i].Path] = kept[out[i].Path]
		}
	}
	if s.onDelete != nil {
		s.onDelete()
	}
	return out
}

func (s *trashStore) Restore(ctx context.Context, p, trash string) (cdccleaner.RestoreOutcome, error) {
	*s.ev = append(*s.ev, "restore "+p)
	f, ok := s.trashed[p]
	if !ok {
		return cdccleaner.NotInTrash, nil
	}
	delete(s.trashed, p)
	s.mu.Lock()
	s.files = append(s.files, f)
	s.mu.Unlock()
	return cdccleaner.Restored, nil
}

type memJournal struct {
	mu      sync.Mutex
	ev      *[]string
	entries []cdccleaner.JournalEntry
}

func (j *memJournal) Write(ctx context.Context, entries []cdccleaner.JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	*j.ev = append(*j.ev, "journal")
	j.entries = append(j.entries, entries...)
	return nil
}

func (j *memJournal) Latest(context.Context, string, []string, []cdccleaner.LSN) (map[string]cdccleaner.JournalEntry, error) {
	return nil, nil
}

func (j *memJournal) events(path string) []string {
	var out []string
	for _, e := range j.entries {
		if e.Path == path {
			out = append(out, e.Event)
		}
	}
	return out
}

// TestDeleteJournalsFirstAndPutsBackWhatIsReferencedMeanwhile: scan
// journals a batch before moving it, and a row that references an orphan
// while its batch is being moved gets the file back.
func TestDeleteJournalsFirstAndPutsBackWhatIsReferencedMeanwhile(t *testing.T) {
	st, r := fixture()
	var ev []string
	ts := &trashStore{store: st, ev: &ev, trashed: map[string]cdccleaner.File{}}
	ts.onDelete = func() {
		r.mu.Lock()
		r.paths["orphan.jpg"] = true // a row committed while the batch moved
		r.mu.Unlock()
	}
	j := &memJournal{ev: &ev}
	cfg := config(st, r)
	cfg.Store, cfg.Delete, cfg.Force = ts, true, true
	cfg.Journal, cfg.TrashPrefix = j, ".trash/"
	cfg.Position = func(context.Context) (cdccleaner.LSN, error) { return 0x100, nil }
	if _, err := scan.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if i := slices.Index(ev, "journal"); i < 0 || i > slices.Index(ev, "delete") {
		t.Fatalf("calls %q: want the journal written before the delete", ev)
	}
	if got := j.events("dir/orphan2.jpg"); !slices.Equal(got, []string{"trashed"}) {
		t.Errorf("journal of dir/orphan2.jpg = %q, want [trashed]", got)
	}
	if got := j.events("orphan.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Errorf("journal of orphan.jpg = %q, want [trashed restored]", got)
	}
	if _, err := st.Stat("orphan.jpg"); err != nil {
		t.Errorf("orphan.jpg, referenced while its batch moved, is not back: %v", err)
	}
	for _, e := range j.entries {
		if e.Source != scan.SourceScan || e.CommitLSN != 0x100 {
			t.Errorf("entry %+v: want source scan and the WAL position read before the re-check", e)
		}
	}
}
