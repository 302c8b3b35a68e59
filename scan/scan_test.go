package scan_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// store is a storage in memory: a lister, a statter and a deleter.
type store struct {
	mu      sync.Mutex
	files   []cdccleaner.File
	deleted []string
	listErr error // returned after listing every file
	fail    map[string]bool
}

func (s *store) List(ctx context.Context, fn func(cdccleaner.File) error) error {
	for _, f := range slices.Clone(s.files) {
		if err := fn(f); err != nil {
			return err
		}
	}
	return s.listErr
}

func (s *store) Stat(p string) (cdccleaner.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		if f.Path == p {
			return f, nil
		}
	}
	return cdccleaner.File{}, fmt.Errorf("stat %q: %w", p, fs.ErrNotExist)
}

func (s *store) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cdccleaner.Result, len(paths))
	for i, p := range paths {
		out[i].Path = p
		if s.fail[p] {
			out[i].Outcome, out[i].Err = cdccleaner.Failed, errors.New("refused")
			continue
		}
		j := slices.IndexFunc(s.files, func(f cdccleaner.File) bool { return f.Path == p })
		if j < 0 {
			out[i].Outcome = cdccleaner.Absent
			continue
		}
		s.files = slices.Delete(s.files, j, j+1)
		s.deleted = append(s.deleted, p)
		out[i].Outcome = cdccleaner.Deleted
	}
	return out
}

// refs is a reference checker over a set of paths.
type refs struct {
	mu      sync.Mutex
	paths   map[string]bool
	calls   int
	maxSize int
	err     error
}

func (r *refs) Visible(context.Context, []uint32) (bool, error) { return true, nil }

func (r *refs) Referenced(_ context.Context, storage string, paths []string) (map[string]bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if storage != "media" {
		return nil, fmt.Errorf("unknown storage %q", storage)
	}
	if r.err != nil {
		return nil, r.err
	}
	r.calls++
	r.maxSize = max(r.maxSize, len(paths))
	out := map[string]bool{}
	for _, p := range paths {
		if r.paths[p] {
			out[p] = true
		}
	}
	return out, nil
}

func old(p string, size int64) cdccleaner.File {
	return cdccleaner.File{Path: p, Size: size, ModTime: now.Add(-48 * time.Hour)}
}

func fixture() (*store, *refs) {
	st := &store{files: []cdccleaner.File{
		old("ref.jpg", 1),
		old("orphan.jpg", 10),
		old("dir/orphan2.jpg", 20),
		{Path: "young.jpg", Size: 5, ModTime: now.Add(-time.Hour)},
		old("cache/x.jpg", 7),
		old("cache/deep/y.jpg", 7),
		old("defaults/avatar.png", 3),
		old("a//b.jpg", 4),
		old("later.jpg", 30),
	}}
	return st, &refs{paths: map[string]bool{"ref.jpg": true}}
}

func config(st *store, r *refs) scan.Config {
	return scan.Config{
		Storage: "media", Files: st, Store: st, Refs: r,
		Keep: []string{"defaults/*"}, Exclude: []string{"cache/**"},
		MinAge: 24 * time.Hour, Now: func() time.Time { return now },
	}
}

func TestDryRunReportsOrphansAndDeletesNothing(t *testing.T) {
	st, r := fixture()
	cfg := config(st, r)
	var got []string
	cfg.Report = func(o scan.Orphan) error {
		if o.Outcome != "" {
			t.Errorf("dry run reported outcome %q for %s", o.Outcome, o.Path)
		}
		got = append(got, o.Path)
		return nil
	}
	var invalid []string
	cfg.Invalid = func(f cdccleaner.File, err error) { invalid = append(invalid, f.Path) }
	stats, err := scan.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"dir/orphan2.jpg", "later.jpg", "orphan.jpg"}; !slices.Equal(got, want) {
		t.Errorf("orphans %q, want %q", got, want)
	}
	if !slices.Equal(invalid, []string{"a//b.jpg"}) {
		t.Errorf("invalid %q", invalid)
	}
	want := scan.Stats{Scanned: 9, Bytes: 87, Referenced: 1, Orphaned: 3, Reclaimable: 60, Young: 1, Excluded: 2, Kept: 1, Invalid: 1}
	stats.Elapsed = 0
	if stats != want {
		t.Errorf("stats %+v\nwant  %+v", stats, want)
	}
	if len(st.deleted) != 0 {
		t.Errorf("dry run deleted %q", st.deleted)
	}
}

func TestDeleteDeletesExactlyTheOrphans(t *testing.T) {
	st, r := fixture()
	st.fail = map[string]bool{"dir/orphan2.jpg": true}
	cfg := config(st, r)
	cfg.Delete = true
	cfg.Force = true // the fixture is mostly orphans; the guards have tests of their own
	// Between listing and deletion, later.jpg becomes referenced.
	cfg.AfterList = func(context.Context) error {
		r.mu.Lock()
		r.paths["later.jpg"] = true
		r.mu.Unlock()
		return nil
	}
	outcomes := map[string]string{}
	cfg.Report = func(o scan.Orphan) error {
		outcomes[o.Path] = o.Outcome
		if (o.Outcome == scan.OutcomeFailed) != (o.Err != nil) {
			t.Errorf("%s: outcome %s with error %v", o.Path, o.Outcome, o.Err)
		}
		return nil
	}
	stats, err := scan.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"orphan.jpg": "deleted", "dir/orphan2.jpg": "failed", "later.jpg": "referenced"}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}
	if !slices.Equal(st.deleted, []string{"orphan.jpg"}) {
		t.Errorf("deleted %q", st.deleted)
	}
	if stats.Deleted != 1 || stats.Failed != 1 || stats.Rescued != 1 || stats.Orphaned != 3 {
		t.Errorf("stats %+v", stats)
	}
}

// TestListingErrorDeletesNothing: the orphans found before a listing
// error are not deleted.
func TestListingErrorDeletesNothing(t *testing.T) {
	st, r := fixture()
	st.listErr = errors.New("permission denied")
	cfg := config(st, r)
	cfg.Delete = true
	cfg.BatchSize = 1
	if _, err := scan.Run(context.Background(), cfg); err == nil || err.Error() != "permission denied" {
		t.Errorf("Run = %v, want the listing error", err)
	}
	if len(st.deleted) != 0 {
		t.Errorf("deleted %q after a listing error", st.deleted)
	}
}

func TestReferenceErrorDeletesNothing(t *testing.T) {
	st, r := fixture()
	r.err = errors.New("connection refused")
	cfg := config(st, r)
	cfg.Delete = true
	if _, err := scan.Run(context.Background(), cfg); !errors.Is(err, r.err) {
		t.Errorf("Run = %v, want the reference error", err)
	}
	if len(st.deleted) != 0 {
		t.Errorf("deleted %q", st.deleted)
	}
}

// TestModifiedSinceListingIsKept: a file rewritten between the listing
// and its deletion is kept (a new upload reusing the name).
func TestModifiedSinceListingIsKept(t *testing.T) {
	st, r := fixture()
	cfg := config(st, r)
	cfg.Delete = true
	cfg.Force = true // the fixture is mostly orphans; the guards have tests of their own
	cfg.AfterList = func(context.Context) error {
		st.mu.Lock()
		defer st.mu.Unlock()
		for i := range st.files {
			if st.files[i].Path == "orphan.jpg" {
				st.files[i].ModTime = now.Add(-time.Minute)
			}
		}
		return nil
	}
	stats, err := scan.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(st.deleted, "orphan.jpg") || stats.Modified != 1 {
		t.Errorf("deleted %q, stats %+v; orphan.jpg was modified and must stay", st.deleted, stats)
	}
}

// TestBatches: references are checked in batches of BatchSize, over many
// files, and every orphan is deleted once.
func TestBatches(t *testing.T) {
	st := &store{}
	r := &refs{paths: map[string]bool{}}
	const n = 2500
	for i := range n {
		p := fmt.Sprintf("f/%05d", i)
		st.files = append(st.files, old(p, 1))
		if i%2 == 0 {
			r.paths[p] = true
		}
	}
	cfg := config(st, r)
	cfg.Delete = true
	stats, err := scan.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Referenced != n/2 || stats.Deleted != n/2 || len(st.files) != n/2 {
		t.Errorf("stats %+v, %d files left", stats, len(st.files))
	}
	if r.maxSize != scan.DefaultBatchSize {
		t.Errorf("largest batch %d, want %d", r.maxSize, scan.DefaultBatchSize)
	}
	// 3 batches while listing, 2 (of 1250 orphans) before deleting.
	if r.calls != 5 {
		t.Errorf("%d reference queries, want 5", r.calls)
	}
}

// racingStore is a store whose Stat counts the calls in flight and, at
// call number atStat, makes path referenced in refs: a row committed while
// the orphans of a batch are looked at again before their deletion.
type racingStore struct {
	*store
	refs   *refs
	atStat int
	path   string
	// onStat, when set, is called at every Stat.
	onStat func()
	// awaitOverlap holds the first call until a second one runs beside it.
	awaitOverlap bool

	mu          sync.Mutex
	calls       int
	inFlight    int
	maxInFlight int
	overlap     chan struct{} // closed when two calls first run at once
}

func newRacingStore(st *store, r *refs, atStat int, path string) *racingStore {
	return &racingStore{store: st, refs: r, atStat: atStat, path: path, overlap: make(chan struct{})}
}

func (s *racingStore) Stat(p string) (cdccleaner.File, error) {
	s.mu.Lock()
	s.calls++
	if s.calls == s.atStat {
		s.refs.mu.Lock()
		s.refs.paths[s.path] = true
		s.refs.mu.Unlock()
	}
	s.inFlight++
	if s.inFlight > s.maxInFlight {
		s.maxInFlight = s.inFlight
		if s.maxInFlight == 2 {
			close(s.overlap)
		}
	}
	wait := s.awaitOverlap && s.calls == 1
	s.mu.Unlock()
	if s.onStat != nil {
		s.onStat()
	}
	// The first call waits for a second one to run beside it, so that
	// concurrent lookups are seen to overlap however they are scheduled.
	// A scanner that looks at one file at a time never sends a second
	// while the first runs: the deadline only keeps it from hanging, and
	// maxInFlight stays 1.
	if wait {
		select {
		case <-s.overlap:
		case <-time.After(10 * time.Second):
		}
	}
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	return s.store.Stat(p)
}

// TestReferencedWhileStatting: a path that becomes referenced while the
// orphans of its batch are looked at again (here at the last lookup) is
// kept: the reference re-check comes after every lookup, right before the
// deletion. The lookups run concurrently, bounded by StatConcurrency.
func TestReferencedWhileStatting(t *testing.T) {
	const n = 40
	st := &store{}
	r := &refs{paths: map[string]bool{}}
	for i := range n {
		st.files = append(st.files, old(fmt.Sprintf("f/%02d", i), 1))
	}
	rs := newRacingStore(st, r, n, "f/17")
	rs.awaitOverlap = true
	cfg := config(st, r)
	cfg.Store = rs
	cfg.Delete = true
	cfg.Force = true // every file is an orphan here
	outcomes := map[string]string{}
	cfg.Report = func(o scan.Orphan) error { outcomes[o.Path] = o.Outcome; return nil }
	stats, err := scan.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rs.calls != n {
		t.Errorf("%d lookups, want %d", rs.calls, n)
	}
	if outcomes["f/17"] != scan.OutcomeReferenced {
		t.Errorf("f/17, referenced at the last lookup: outcome %q, want %q", outcomes["f/17"], scan.OutcomeReferenced)
	}
	if slices.Contains(st.deleted, "f/17") {
		t.Errorf("f/17 was deleted")
	}
	if stats.Deleted != n-1 || stats.Rescued != 1 || len(st.deleted) != n-1 {
		t.Errorf("stats %+v, deleted %d, want %d deleted and 1 rescued", stats, len(st.deleted), n-1)
	}
	if rs.maxInFlight < 2 || rs.maxInFlight > scan.StatConcurrency {
		t.Errorf("at most %d lookups at once, want 2 to %d", rs.maxInFlight, scan.StatConcurrency)
	}
}

// TestCancelWhileStatting: a scan cancelled while it looks at orphans
// again deletes nothing and returns the context's error.
func TestCancelWhileStatting(t *testing.T) {
	st, r := fixture()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs := newRacingStore(st, r, 0, "")
	rs.onStat = cancel
	cfg := config(st, r)
	cfg.Store = rs
	cfg.Delete = true
	cfg.Force = true // the fixture is mostly orphans; the guards have tests of their own
	if _, err := scan.Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if len(st.deleted) != 0 {
		t.Errorf("deleted %q after cancellation", st.deleted)
	}
}

func TestProgress(t *testing.T) {
	st, r := fixture()
	cfg := config(st, r)
	cfg.BatchSize = 1
	clock := now
	cfg.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	calls := 0
	cfg.Progress = func(phase string, s scan.Stats) {
		calls++
		if phase != "listing" || s.Scanned == 0 || s.Elapsed <= 0 {
			t.Errorf("progress %s %+v", phase, s)
		}
	}
	if _, err := scan.Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("no progress reported")
	}
}

// slowStatStore is a store whose lookups take a millisecond, as a nearby
// S3 HeadObject would.
type slowStatStore struct{ *store }

func (s slowStatStore) Stat(p string) (cdccleaner.File, error) {
	time.Sleep(time.Millisecond)
	return s.store.Stat(p)
}

// BenchmarkDeleteLookups: a scan with Delete of one batch of orphans
// whose lookups take 1ms each; the lookups run StatConcurrency at a time,
// so a batch takes about BatchSize/StatConcurrency ms, not BatchSize ms.
func BenchmarkDeleteLookups(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		st := &store{}
		for i := range scan.DefaultBatchSize {
			st.files = append(st.files, old(fmt.Sprintf("f/%04d", i), 1))
		}
		cfg := config(st, &refs{paths: map[string]bool{}})
		cfg.Store = slowStatStore{st}
		cfg.Delete = true
		b.StartTimer()
		if _, err := scan.Run(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeleteRefusals: a listing that looks like a wrong configuration
// (most files orphaned; a configured table empty while the storage holds
// many files) deletes nothing and says why and how to override; --force
// deletes; a dry run reports the same figures.
func TestDeleteRefusals(t *testing.T) {
	many := func(n int) *store {
		st := &store{}
		for i := range n {
			st.files = append(st.files, old(fmt.Sprintf("f/%03d", i), 1))
		}
		return st
	}
	t.Run("most files orphaned", func(t *testing.T) {
		st := many(10)
		r := &refs{paths: map[string]bool{"f/000": true, "f/001": true, "f/002": true, "f/003": true}} // 6 of 10 orphaned
		cfg := config(st, r)
		cfg.Delete = true
		stats, err := scan.Run(context.Background(), cfg)
		var refused *scan.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), "6 of the 10 listed files checked against the database (60%) look orphaned") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("err = %v, want a refusal naming the figures and --force", err)
		}
		if len(st.files) != 10 || stats.Deleted != 0 {
			t.Fatalf("%d files left, %d deleted: a refused scan deleted", len(st.files), stats.Deleted)
		}
		if got := scan.Refusal(cfg, stats); got == "" {
			t.Error("Refusal says nothing for the dry-run report")
		}
		cfg.MaxOrphanRatio = 0.7
		if _, err := scan.Run(context.Background(), cfg); err != nil || len(st.files) != 4 {
			t.Fatalf("within --max-orphan-ratio 0.7: err %v, %d files left, want 4", err, len(st.files))
		}
	})
	t.Run("young and excluded files do not dilute the share", func(t *testing.T) {
		st := many(10)
		for i := range 10 {
			st.files = append(st.files, cdccleaner.File{Path: fmt.Sprintf("new/%02d", i), Size: 1, ModTime: now}, old(fmt.Sprintf("cache/%02d", i), 1))
		}
		r := &refs{paths: map[string]bool{"f/000": true, "f/001": true, "f/002": true}} // 7 of the 10 old files orphaned; 30 listed
		cfg := config(st, r)
		cfg.Delete = true
		_, err := scan.Run(context.Background(), cfg)
		if !errors.As(err, new(*scan.RefusedError)) || !strings.Contains(err.Error(), "7 of the 10 listed files checked against the database (70%)") {
			t.Fatalf("err = %v, want a refusal counting only the files checked", err)
		}
		if len(st.files) != 30 {
			t.Fatalf("%d files left: a refused scan deleted", len(st.files))
		}
	})
	t.Run("force", func(t *testing.T) {
		st := many(10)
		cfg := config(st, &refs{})
		cfg.Delete, cfg.Force = true, true
		if _, err := scan.Run(context.Background(), cfg); err != nil || len(st.files) != 0 {
			t.Fatalf("forced: err %v, %d files left", err, len(st.files))
		}
	})
	t.Run("empty table", func(t *testing.T) {
		st := many(20)
		r := &refs{paths: map[string]bool{}}
		for i := range 15 {
			r.paths[fmt.Sprintf("f/%03d", i)] = true // 5 of 20 orphaned: the ratio lets it through
		}
		cfg := config(st, r)
		cfg.Delete = true
		cfg.EmptyTables = []string{"public.legacy_upload"}
		cfg.EmptyTableMinFiles = 20
		_, err := scan.Run(context.Background(), cfg)
		if !errors.As(err, new(*scan.RefusedError)) || !strings.Contains(err.Error(), "public.legacy_upload holds no rows") {
			t.Fatalf("err = %v, want a refusal naming the empty table", err)
		}
		if len(st.files) != 20 {
			t.Fatalf("%d files left: a refused scan deleted", len(st.files))
		}
		cfg.EmptyTableMinFiles = 21 // few files: an empty table is no sign
		if _, err := scan.Run(context.Background(), cfg); err != nil || len(st.files) != 15 {
			t.Fatalf("few files: err %v, %d files left, want 15", err, len(st.files))
		}
	})
}
