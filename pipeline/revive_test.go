package pipeline

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

// memStorage is a storage in memory with a trash, as local and s3 behave:
// a removal moves the file to ".trash/"+path, a restore moves it back
// unless something is at the path.
type memStorage struct {
	trash bool

	mu      sync.Mutex
	files   map[string]string // path -> content
	trashed map[string]string
	restErr error           // returned by Restore while set
	pruned  []string        // ListPrefix and PruneDirs calls (derived_test.go)
	denied  map[string]bool // paths Delete refuses for permission
}

var (
	_ cdccleaner.Storage  = (*memStorage)(nil)
	_ cdccleaner.Restorer = (*memStorage)(nil)
	_ cdccleaner.Statter  = (*memStorage)(nil)
)

func newMemStorage(trash bool, files ...string) *memStorage {
	m := &memStorage{trash: trash, files: map[string]string{}, trashed: map[string]string{}}
	for _, f := range files {
		m.files[f] = "content of " + f
	}
	return m
}

func (m *memStorage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]cdccleaner.Result, len(paths))
	for i, p := range paths {
		out[i].Path = p
		content, ok := m.files[p]
		switch {
		case m.denied[p]:
			out[i].Outcome, out[i].Err = cdccleaner.Failed, &fs.PathError{Op: "unlinkat", Path: p, Err: fs.ErrPermission}
		case !ok && m.trash && m.trashed[p] != "":
			out[i].Outcome, out[i].Trash = cdccleaner.Absent, ".trash/"+p
		case !ok:
			out[i].Outcome = cdccleaner.Absent
		case m.trash:
			delete(m.files, p)
			m.trashed[p] = content
			out[i].Outcome, out[i].Trash = cdccleaner.Deleted, ".trash/"+p
		default:
			delete(m.files, p)
			out[i].Outcome = cdccleaner.Deleted
		}
	}
	return out
}

func (m *memStorage) Restore(ctx context.Context, p, trash string) (cdccleaner.RestoreOutcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restErr != nil {
		return 0, m.restErr
	}
	if trash != ".trash/"+p {
		return 0, cdccleaner.Permanent(cdccleaner.ReasonRejectedPath, errors.New("wrong trash path "+trash))
	}
	if _, ok := m.files[p]; ok {
		return cdccleaner.Occupied, nil
	}
	content, ok := m.trashed[p]
	if !ok {
		return cdccleaner.NotInTrash, nil
	}
	delete(m.trashed, p)
	m.files[p] = content
	return cdccleaner.Restored, nil
}

func (m *memStorage) Stat(p string) (cdccleaner.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[p]; !ok {
		return cdccleaner.File{}, fs.ErrNotExist
	}
	return cdccleaner.File{Path: p}, nil
}

func (m *memStorage) has(p string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.files[p]
	return ok
}

// memJournal is a cdccleaner.Journal in memory, answering Latest as the
// table does.
type memJournal struct {
	mu      sync.Mutex
	entries []cdccleaner.JournalEntry
	now     func() time.Time
}

func (j *memJournal) Write(ctx context.Context, entries []cdccleaner.JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range entries {
		e.At = time.Now()
		if j.now != nil {
			e.At = j.now()
		}
		j.entries = append(j.entries, e)
	}
	return nil
}

func (j *memJournal) Latest(ctx context.Context, storage string, paths []string, upTo []cdccleaner.LSN) (map[string]cdccleaner.JournalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]cdccleaner.JournalEntry{}
	for i, p := range paths {
		for _, e := range j.entries { // in write order: the last wins
			if e.Storage != storage || e.Path != p || e.CommitLSN > upTo[i] {
				continue
			}
			out[p] = e
		}
	}
	return out, nil
}

func (j *memJournal) events(path string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.entries {
		if e.Path == path {
			out = append(out, e.Event)
		}
	}
	return out
}

type reviveWorld struct {
	p       *Pipeline
	storage *memStorage
	journal *memJournal
	refs    *fakeRefs
	rec     *fakeRecorder
}

func newReviveWorld(t *testing.T, st *memStorage, referenced ...string) *reviveWorld {
	t.Helper()
	ev := &events{}
	w := &reviveWorld{storage: st, journal: &memJournal{}, refs: &fakeRefs{ev: ev, referenced: map[string]bool{}}, rec: &fakeRecorder{ev: ev}}
	for _, p := range referenced {
		w.refs.referenced[p] = true
	}
	trash := map[string]Trash{}
	if st.trash {
		trash["media"] = Trash{Prefix: ".trash/", Retention: time.Hour}
	}
	var err error
	w.p, err = New(Config{
		Storages: map[string]cdccleaner.Storage{"media": st},
		Refs:     w.refs,
		Failures: w.rec,
		Journal:  w.journal,
		Trash:    trash,
		Logger:   zerolog.New(zerolog.TestWriter{T: t}),
		RetryMin: time.Millisecond,
		RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// removal is a batch of candidates of "media" committed at lsn.
func removal(lsn cdccleaner.LSN, paths ...string) *batch {
	b := &batch{storage: "media"}
	for _, p := range paths {
		b.cands = append(b.cands, cdccleaner.Candidate{Ref: cdccleaner.Ref{Storage: "media", Path: p},
			Source: "public.photo.image", Txn: uint64(lsn), Xid: uint32(lsn), CommitLSN: lsn, CommitTime: time.Now()})
	}
	return b
}

// reference is a batch of new references of "media" committed at lsn.
func reference(lsn cdccleaner.LSN, paths ...string) *batch {
	b := &batch{storage: "media", refs: []cdccleaner.Candidate{}}
	for _, p := range paths {
		b.refs = append(b.refs, cdccleaner.Candidate{Ref: cdccleaner.Ref{Storage: "media", Path: p},
			Source: "public.photo.image", Txn: uint64(lsn), Xid: uint32(lsn), CommitLSN: lsn, CommitTime: time.Now()})
	}
	return b
}

func (w *reviveWorld) settle(t *testing.T, b *batch) {
	t.Helper()
	if err := w.p.settle(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

// revive handles b as committed rows referencing its paths again: they are
// referenced from now on.
func (w *reviveWorld) revive(t *testing.T, b *batch) {
	t.Helper()
	for _, c := range b.refs {
		w.refs.reference(c.Path)
	}
	if err := w.p.revive(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

func (w *reviveWorld) counts() (restored, dangling float64) {
	return testutil.ToFloat64(w.p.cfg.Metrics.Restored.WithLabelValues("media")),
		testutil.ToFloat64(w.p.cfg.Metrics.Dangling.WithLabelValues("media"))
}

func TestReviveRestoresATrashedFile(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, "a.jpg", "b.jpg"))
	w.settle(t, removal(100, "a.jpg", "b.jpg"))
	if w.storage.has("a.jpg") || w.storage.has("b.jpg") {
		t.Fatal("removal left the files in place")
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed"}) {
		t.Fatalf("journal of a.jpg = %q after the removal, want [trashed]", got)
	}
	// a.jpg is referenced again by a later commit; b.jpg is not.
	w.revive(t, reference(200, "a.jpg", "new.jpg"))
	if !w.storage.has("a.jpg") {
		t.Fatal("a.jpg was not restored")
	}
	if w.storage.has("b.jpg") {
		t.Fatal("b.jpg, never referenced again, was restored")
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Fatalf("journal of a.jpg = %q, want [trashed restored]", got)
	}
	if got := w.journal.events("new.jpg"); got != nil {
		t.Fatalf("journal of a path never removed = %q, want nothing", got)
	}
	if r, d := w.counts(); r != 1 || d != 0 {
		t.Fatalf("restored %v dangling %v, want 1 and 0", r, d)
	}

	// A replay (crash before the slot confirmed) changes nothing.
	w.revive(t, reference(200, "a.jpg"))
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Fatalf("journal of a.jpg after a replay = %q, want [trashed restored]", got)
	}

	// Orphaned again later, it is removed again, and a later reference
	// brings it back again.
	w.refs.unreference("a.jpg")
	w.settle(t, removal(300, "a.jpg"))
	if w.storage.has("a.jpg") {
		t.Fatal("a.jpg orphaned again was not removed")
	}
	w.revive(t, reference(400, "a.jpg"))
	if !w.storage.has("a.jpg") {
		t.Fatal("a.jpg referenced a second time was not restored")
	}
}

func TestReviveIgnoresReferencesOlderThanTheRemoval(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, "a.jpg"))
	w.settle(t, removal(300, "a.jpg"))
	// A reference committed before the removal (a replay of an earlier
	// transaction) must not undo it.
	w.revive(t, reference(200, "a.jpg"))
	if w.storage.has("a.jpg") {
		t.Fatal("a reference older than the removal restored the file")
	}
	// Within one batch, the newest reference counts.
	w.revive(t, reference(200, "a.jpg", "x.jpg"))
	b := reference(250, "a.jpg")
	b.refs = append(b.refs, reference(350, "a.jpg").refs...)
	w.revive(t, b)
	if !w.storage.has("a.jpg") {
		t.Fatal("a batch whose newest reference follows the removal did not restore")
	}
}

func TestReviveNeverReplacesAFileAtThePath(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	w.settle(t, removal(100, "a.jpg"))
	st.mu.Lock()
	st.files["a.jpg"] = "new upload"
	st.mu.Unlock()
	w.revive(t, reference(200, "a.jpg"))
	st.mu.Lock()
	content, trashed := st.files["a.jpg"], st.trashed["a.jpg"]
	st.mu.Unlock()
	if content != "new upload" {
		t.Fatalf("a.jpg = %q, want the new upload", content)
	}
	if trashed != "content of a.jpg" {
		t.Fatal("the trashed copy was touched")
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed", "occupied"}) {
		t.Fatalf("journal = %q, want [trashed occupied]", got)
	}
	if r, d := w.counts(); r != 0 || d != 0 {
		t.Fatalf("restored %v dangling %v, want 0 and 0", r, d)
	}
}

func TestReviveReportsDanglingReferences(t *testing.T) {
	tests := []struct {
		name    string
		trash   bool
		prepare func(w *reviveWorld)
		reason  string
	}{
		{"trash off", false, nil, cdccleaner.DanglingDeleted},
		{"purged after the undo window", true, func(w *reviveWorld) {
			w.storage.mu.Lock()
			clear(w.storage.trashed)
			w.storage.mu.Unlock()
			w.journal.mu.Lock()
			for i := range w.journal.entries {
				w.journal.entries[i].At = time.Now().Add(-2 * time.Hour)
			}
			w.journal.mu.Unlock()
		}, cdccleaner.DanglingPurged},
		{"gone from the trash within the window", true, func(w *reviveWorld) {
			w.storage.mu.Lock()
			clear(w.storage.trashed)
			w.storage.mu.Unlock()
		}, cdccleaner.DanglingMissing},
		{"restore fails for good", true, func(w *reviveWorld) {
			w.storage.restErr = cdccleaner.Permanent(cdccleaner.ReasonIsDirectory, errors.New("a directory"))
		}, cdccleaner.DanglingError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newReviveWorld(t, newMemStorage(tt.trash, "a.jpg"))
			w.settle(t, removal(100, "a.jpg"))
			if tt.prepare != nil {
				tt.prepare(w)
			}
			w.revive(t, reference(200, "a.jpg"))
			if r, d := w.counts(); r != 0 || d != 1 {
				t.Fatalf("restored %v dangling %v, want 0 and 1", r, d)
			}
			_, recorded := w.rec.snapshot()
			if len(recorded) != 1 || recorded[0].Reason != tt.reason || recorded[0].Path != "a.jpg" || recorded[0].CommitLSN != 200 {
				t.Fatalf("recorded %+v, want one failure of a.jpg at 0/C8 with reason %s", recorded, tt.reason)
			}
			if got := w.journal.events("a.jpg"); len(got) != 2 || got[1] != "dangling" {
				t.Fatalf("journal = %q, want a removal then dangling", got)
			}
			// A replay reports it once.
			w.revive(t, reference(200, "a.jpg"))
			if _, d := w.counts(); d != 1 {
				t.Fatalf("dangling counted %v times after a replay, want 1", d)
			}
		})
	}
}

func TestReviveRetriesTransientRestoreErrors(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	w.settle(t, removal(100, "a.jpg"))
	st.restErr = errors.New("connection reset")
	w.refs.reference("a.jpg")
	done := make(chan error, 1)
	go func() { done <- w.p.revive(t.Context(), reference(200, "a.jpg")) }()
	time.Sleep(30 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("revive returned %v while the storage failed", err)
	default:
	}
	st.mu.Lock()
	st.restErr = nil
	st.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !st.has("a.jpg") {
		t.Fatal("not restored after the storage recovered")
	}
}

func TestReviveAfterAnAbsentRemovalLooksAtTheStorage(t *testing.T) {
	st := newMemStorage(false)
	w := newReviveWorld(t, st)
	w.settle(t, removal(100, "a.jpg", "b.jpg")) // both absent
	st.mu.Lock()
	st.files["b.jpg"] = "uploaded since"
	st.mu.Unlock()
	w.revive(t, reference(200, "a.jpg", "b.jpg"))
	// The intent (deleted), corrected (absent), then the answer.
	if got := w.journal.events("b.jpg"); !slices.Equal(got, []string{"deleted", "absent", "occupied"}) {
		t.Fatalf("journal of b.jpg = %q, want [deleted absent occupied]", got)
	}
	_, recorded := w.rec.snapshot()
	if len(recorded) != 1 || recorded[0].Path != "a.jpg" || recorded[0].Reason != cdccleaner.DanglingAbsent {
		t.Fatalf("recorded %+v, want a.jpg as dangling_absent", recorded)
	}
}

// TestReplayedRemovalFindsTheTrashedCopy: a crash between the move to the
// trash and the journal write leaves the file in the trash and no entry;
// the replayed removal finds it absent, and journals where it is.
func TestReplayedRemovalFindsTheTrashedCopy(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	st.Delete(t.Context(), []string{"a.jpg"}) // moved, then the crash
	w := newReviveWorld(t, st)
	w.settle(t, removal(100, "a.jpg"))
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed"}) {
		t.Fatalf("journal = %q, want [trashed]", got)
	}
	w.revive(t, reference(200, "a.jpg"))
	if !st.has("a.jpg") {
		t.Fatal("not restored")
	}
}

func TestOrderOfRemovalsAndReReferences(t *testing.T) {
	o := newOrder()
	enter := func(b *batch) *batch {
		b.left = make(chan struct{})
		o.enter(b)
		return b
	}
	r1 := enter(removal(100, "a.jpg", "b.jpg"))
	r2 := enter(removal(110, "a.jpg")) // removals never wait for removals
	ref := enter(reference(120, "a.jpg", "c.jpg"))
	other := enter(reference(130, "z.jpg"))
	r3 := enter(removal(140, "c.jpg", "y.jpg"))
	if len(r1.after)+len(r2.after) != 0 {
		t.Fatalf("removals wait for %d and %d batches, want none", len(r1.after), len(r2.after))
	}
	if got := slices.Collect(maps.Keys(set(ref.after))); len(got) != 2 || !set(ref.after)[r1] || !set(ref.after)[r2] {
		t.Fatalf("the re-reference waits for %d batches, want both removals of a.jpg", len(got))
	}
	if len(other.after) != 0 {
		t.Fatal("a re-reference of another path waits")
	}
	if len(r3.after) != 1 || r3.after[0] != ref {
		t.Fatal("a removal of a path referenced again before it does not wait for that re-reference")
	}

	waited := make(chan error, 1)
	go func() { waited <- o.wait(t.Context(), ref) }()
	o.leave(r1)
	select {
	case <-waited:
		t.Fatal("the re-reference went on while a removal of its path was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	o.leave(r2)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	o.leave(ref)
	o.leave(other)
	o.leave(r3)
	if len(o.removals)+len(o.refs) != 0 {
		t.Fatalf("%d removal and %d reference paths left registered", len(o.removals), len(o.refs))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	late := enter(reference(150, "q.jpg"))
	late.after = []*batch{{left: make(chan struct{})}}
	if err := o.wait(ctx, late); err == nil {
		t.Fatal("wait returned nil after ctx ended")
	}
}

// slowFirstCheck answers its first reference check as of its start, and
// only once released: a row committed meanwhile is not in that answer.
type slowFirstCheck struct {
	cdccleaner.ReferenceChecker
	once             sync.Once
	checked, release chan struct{}
}

func (s *slowFirstCheck) Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	refs, err := s.ReferenceChecker.Referenced(ctx, storage, paths)
	s.once.Do(func() {
		close(s.checked)
		<-s.release
	})
	return refs, err
}

func set(bs []*batch) map[*batch]bool {
	m := map[*batch]bool{}
	for _, b := range bs {
		m[b] = true
	}
	return m
}

// TestReReferenceWhileTheRemovalIsInFlight runs workers as a session does:
// the removal's reference check ran before the re-reference committed
// (the hook holds it there), and the re-reference is decoded meanwhile. It
// must not miss the removal.
func TestReReferenceWhileTheRemovalIsInFlight(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	checked := make(chan struct{})
	release := make(chan struct{})
	w.p.cfg.Refs = &slowFirstCheck{ReferenceChecker: w.refs, checked: checked, release: release}
	tr := replication.NewTracker(50)
	ord := newOrder()
	in := make(chan *batch, 4)
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- w.p.work(t.Context(), tr, ord, in) }()
	}
	send := func(b *batch) {
		for _, c := range b.items() {
			tr.Begin(c.Txn)
			tr.Emitted(c.Txn, 1)
			tr.Commit(c.Txn, c.CommitLSN+1)
		}
		b.left = make(chan struct{})
		ord.enter(b)
		in <- b
	}
	send(removal(100, "a.jpg"))
	<-checked // the removal decided "unreferenced"; the row comes back now
	w.refs.reference("a.jpg")
	send(reference(200, "a.jpg"))
	time.Sleep(20 * time.Millisecond)
	close(release)
	close(in)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if !st.has("a.jpg") {
		t.Fatalf("a.jpg is missing; journal %q", w.journal.events("a.jpg"))
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Fatalf("journal = %q, want [trashed restored]", got)
	}
	if tr.Confirmed() != 201 {
		t.Fatalf("confirmed %v, want 201 (both settled)", tr.Confirmed())
	}
}

func TestDryRunComparesNothing(t *testing.T) {
	p, err := New(Config{
		Storages: map[string]cdccleaner.Storage{"media": newMemStorage(true)},
		Refs:     &fakeRefs{ev: &events{}}, Failures: &fakeRecorder{ev: &events{}}, Journal: &memJournal{}, DryRun: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.watchRefs() {
		t.Fatal("a dry run compares new references with the journal")
	}
}

func TestSplitSource(t *testing.T) {
	p, err := New(Config{
		Columns:  []cdccleaner.Column{{Storage: "media", Schema: "my.schema", Table: "t", Name: "a.b"}},
		Storages: map[string]cdccleaner.Storage{"media": newMemStorage(true)},
		Refs:     &fakeRefs{ev: &events{}}, Failures: &fakeRecorder{ev: &events{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for source, want := range map[string][2]string{
		"my.schema.t.a.b": {"my.schema.t", "a.b"},
		"message":         {"message", ""},
	} {
		if table, column := p.splitSource(source); table != want[0] || column != want[1] {
			t.Errorf("splitSource(%q) = %q, %q, want %q, %q", source, table, column, want[0], want[1])
		}
	}
}

// crashingStorage moves files as its memStorage does and then "crashes":
// it cancels the settle's context before answering, as a kill -9 after the
// move would end the process before anything else is written.
type crashingStorage struct {
	*memStorage
	crash context.CancelFunc
}

func (c *crashingStorage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	out := c.memStorage.Delete(ctx, paths)
	c.crash()
	return out
}

// TestCrashAfterTheMoveThenReReferenced: the file went to the trash and the
// process died before the batch settled; a row referencing the path again
// committed before the restart. The replayed removal keeps the path (it is
// referenced) and removes nothing; the journal already said where the
// file went, so the re-reference brings it back.
func TestCrashAfterTheMoveThenReReferenced(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	ctx, crash := context.WithCancel(t.Context())
	w.p.cfg.Storages["media"] = &crashingStorage{memStorage: st, crash: crash}
	if err := w.p.settle(ctx, removal(100, "a.jpg")); err == nil {
		t.Fatal("settle returned nil after the crash")
	}
	if st.has("a.jpg") {
		t.Fatal("the crashing storage did not move the file")
	}

	// The restart: the same storage and journal, the row is back.
	again := newReviveWorld(t, st, "a.jpg")
	again.journal = w.journal
	again.p.cfg.Journal = w.journal
	again.settle(t, removal(100, "a.jpg"))
	again.revive(t, reference(200, "a.jpg"))
	if !st.has("a.jpg") {
		t.Fatalf("a.jpg is referenced and still in the trash; journal %q", w.journal.events("a.jpg"))
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed", "restored"}) {
		t.Fatalf("journal = %q, want [trashed restored]", got)
	}
}

// TestReviveLeavesWhatIsNoLongerReferenced: a transaction that references
// a removed path and removes it again (or a later one that removes it
// again) leaves nothing that needs the file: it stays in the trash.
func TestReviveLeavesWhatIsNoLongerReferenced(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	w.settle(t, removal(100, "a.jpg"))
	if err := w.p.revive(t.Context(), reference(200, "a.jpg")); err != nil { // not referenced now
		t.Fatal(err)
	}
	if st.has("a.jpg") {
		t.Fatal("a path no row references now was restored")
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed"}) {
		t.Fatalf("journal = %q, want [trashed]", got)
	}
	if r, d := w.counts(); r != 0 || d != 0 {
		t.Fatalf("restored %v dangling %v, want none", r, d)
	}
}

// lateRestorer is a memStorage whose restores lose a race: the trash copy
// is gone (another re-reference restored it) and the file is at its path.
type lateRestorer struct{ *memStorage }

func (l lateRestorer) Restore(ctx context.Context, p, trash string) (cdccleaner.RestoreOutcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.trashed[p]; ok {
		delete(l.trashed, p)
		l.files[p] = c
	}
	return cdccleaner.NotInTrash, nil
}

// TestReviveLosingARestoreRaceIsNotDangling: two batches re-reference one
// path; the second finds the trash empty because the first restored it.
// The file is there: nothing dangles.
func TestReviveLosingARestoreRaceIsNotDangling(t *testing.T) {
	st := newMemStorage(true, "a.jpg")
	w := newReviveWorld(t, st)
	w.settle(t, removal(100, "a.jpg"))
	w.p.cfg.Storages["media"] = lateRestorer{st}
	w.revive(t, reference(200, "a.jpg"))
	if r, d := w.counts(); d != 0 || r != 0 {
		t.Fatalf("restored %v dangling %v, want 0 and 0 (occupied)", r, d)
	}
	if got := w.journal.events("a.jpg"); !slices.Equal(got, []string{"trashed", "occupied"}) {
		t.Fatalf("journal = %q, want [trashed occupied]", got)
	}
}

// TestReplayedRemovalAfterARestoreComesBackAgain: the fault suite's case.
// A file is trashed (LSN 100), restored for a row referencing it again
// (150); the cleaner restarts and replays the removal of 100 while that
// row is deleted for a moment, so the file is trashed again, journaled at
// LSN 100, after the restore of 150. The row comes back (200): the file
// must come back too. Ordered by LSN, the journal answered "restored" and
// the file stayed in the trash.
func TestReplayedRemovalAfterARestoreComesBackAgain(t *testing.T) {
	w := newReviveWorld(t, newMemStorage(true, "a.jpg"))
	w.settle(t, removal(100, "a.jpg"))
	w.revive(t, reference(150, "a.jpg"))
	if !w.storage.has("a.jpg") {
		t.Fatal("not restored the first time")
	}
	w.refs.unreference("a.jpg") // the row deleted, for a moment
	w.settle(t, removal(100, "a.jpg"))
	if w.storage.has("a.jpg") {
		t.Fatal("the replayed removal did not trash the file")
	}
	w.revive(t, reference(200, "a.jpg"))
	if !w.storage.has("a.jpg") {
		t.Errorf("the file did not come back after a replayed removal; journal %q", w.journal.events("a.jpg"))
	}
}
