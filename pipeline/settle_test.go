package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

// events is the order in which the fakes were called, shared by all of
// them, so that a test can say "nothing was deleted before X".
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf(format, args...))
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// script says how fakeStorage answers for one path. The zero value deletes.
type script struct {
	absent    bool  // report Absent instead of Deleted
	transient int   // fail transiently this many times first; -1: forever
	permanent error // fail with this error every time
	hang      bool  // block until ctx ends
	denied    int   // fail with EACCES this many times first; -1: forever
}

// fakeStorage is a cdccleaner.Storage scripted per path.
type fakeStorage struct {
	ev     *events
	script map[string]script

	mu       sync.Mutex
	attempts map[string]int // how often each path was passed to Delete
}

var _ cdccleaner.Storage = (*fakeStorage)(nil)

func (s *fakeStorage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	s.ev.add("delete %q", paths)
	out := make([]cdccleaner.Result, 0, len(paths))
	for i, p := range paths {
		s.mu.Lock()
		if s.attempts == nil {
			s.attempts = map[string]int{}
		}
		s.attempts[p]++
		n := s.attempts[p]
		sc := s.script[p]
		s.mu.Unlock()
		if sc.hang {
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			// As the contract says: unhandled paths fail transiently.
			for _, rest := range paths[i:] {
				out = append(out, cdccleaner.Result{Path: rest, Outcome: cdccleaner.Failed, Err: fmt.Errorf("delete %s: %w", rest, ctx.Err())})
			}
			return out
		}
		switch {
		case sc.denied < 0 || n <= sc.denied:
			out = append(out, cdccleaner.Result{Path: p, Outcome: cdccleaner.Failed, Err: &fs.PathError{Op: "unlinkat", Path: p, Err: syscall.EACCES}})
		case sc.permanent != nil:
			out = append(out, cdccleaner.Result{Path: p, Outcome: cdccleaner.Failed, Err: sc.permanent})
		case sc.transient < 0 || n <= sc.transient:
			out = append(out, cdccleaner.Result{Path: p, Outcome: cdccleaner.Failed, Err: fmt.Errorf("delete %s: connection reset (attempt %d)", p, n)})
		case sc.absent:
			out = append(out, cdccleaner.Result{Path: p, Outcome: cdccleaner.Absent})
		default:
			out = append(out, cdccleaner.Result{Path: p, Outcome: cdccleaner.Deleted})
		}
	}
	return out
}

func (s *fakeStorage) attemptsCopy() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.attempts)
}

// fakeRefs is a cdccleaner.ReferenceChecker over a fixed set of referenced
// paths that fails its first fail calls.
type fakeRefs struct {
	ev         *events
	referenced map[string]bool
	fail       int
	hook       func() // called at the start of every call, if set
	// invisible is how many Visible calls answer false before true.
	invisible int

	mu          sync.Mutex
	calls       [][]string
	visibleSeen int
}

var _ cdccleaner.ReferenceChecker = (*fakeRefs)(nil)

func (r *fakeRefs) Visible(ctx context.Context, xids []uint32) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.visibleSeen++
	if r.visibleSeen <= r.invisible {
		r.ev.add("not visible %v", xids)
		return false, nil
	}
	return true, nil
}

func (r *fakeRefs) Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	if r.hook != nil {
		r.hook()
	}
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(paths))
	n := len(r.calls)
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		r.ev.add("refs failed %q", paths)
		return nil, fmt.Errorf("query references: %w", err)
	}
	if n <= r.fail {
		r.ev.add("refs failed %q", paths)
		return nil, errors.New("query references: connection refused")
	}
	r.ev.add("refs %q", paths)
	out := map[string]bool{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range paths {
		if r.referenced[p] {
			out[p] = true
		}
	}
	return out, nil
}

// unreference marks paths as referenced no more.
func (r *fakeRefs) unreference(paths ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range paths {
		delete(r.referenced, p)
	}
}

// reference marks paths as referenced from now on (rows came back).
func (r *fakeRefs) reference(paths ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range paths {
		r.referenced[p] = true
	}
}

func (r *fakeRefs) callsCopy() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// fakeRecorder is a cdccleaner.FailureRecorder that fails its first fail
// calls and keeps what it was given afterwards.
type fakeRecorder struct {
	ev   *events
	fail int
	hook func() // called at the start of every call, if set

	mu       sync.Mutex
	calls    int
	recorded []cdccleaner.Failure
}

var _ cdccleaner.FailureRecorder = (*fakeRecorder)(nil)

func (r *fakeRecorder) RecordFailures(ctx context.Context, failures []cdccleaner.Failure) error {
	if r.hook != nil {
		r.hook()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if err := ctx.Err(); err != nil {
		r.ev.add("record failed")
		return fmt.Errorf("insert failed deletions: %w", err)
	}
	if r.calls <= r.fail {
		r.ev.add("record failed")
		return errors.New("insert failed deletions: connection refused")
	}
	r.ev.add("record %d", len(failures))
	r.recorded = append(r.recorded, failures...)
	return nil
}

func (r *fakeRecorder) snapshot() (int, []cdccleaner.Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, slices.Clone(r.recorded)
}

// world is a Pipeline wired to fakes.
type world struct {
	p       *Pipeline
	ev      *events
	storage *fakeStorage
	refs    *fakeRefs
	rec     *fakeRecorder
}

type worldOpts struct {
	script     map[string]script
	referenced []string
	refsFail   int
	recFail    int
	dryRun     bool
	logs       io.Writer // also gets the pipeline's logs, if set
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	ev := &events{}
	w := &world{
		ev:      ev,
		storage: &fakeStorage{ev: ev, script: o.script},
		refs:    &fakeRefs{ev: ev, referenced: map[string]bool{}, fail: o.refsFail},
		rec:     &fakeRecorder{ev: ev, fail: o.recFail},
	}
	for _, p := range o.referenced {
		w.refs.referenced[p] = true
	}
	var logs io.Writer = zerolog.TestWriter{T: t}
	if o.logs != nil {
		logs = io.MultiWriter(logs, o.logs)
	}
	p, err := New(Config{
		Storages: map[string]cdccleaner.Storage{"media": w.storage},
		Refs:     w.refs,
		Failures: w.rec,
		Logger:   zerolog.New(logs),
		DryRun:   o.dryRun,
		RetryMin: time.Millisecond,
		RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.p = p
	return w
}

// mediaBatch is a batch of storage "media" with one candidate per path, all
// of transaction txn.
func mediaBatch(txn uint64, paths ...string) *batch {
	b := &batch{storage: "media"}
	for _, p := range paths {
		b.cands = append(b.cands, cdccleaner.Candidate{
			Ref:        cdccleaner.Ref{Storage: "media", Path: p},
			Source:     "public.photo.image",
			Txn:        txn,
			CommitLSN:  cdccleaner.LSN(150),
			CommitTime: time.Now(),
		})
	}
	return b
}

// counters reads the per-storage counters of "media".
type counters struct {
	deleted, absent, kept float64
	failed                map[string]float64 // by reason, only non-zero
}

func readCounters(p *Pipeline) counters {
	m := p.cfg.Metrics
	c := counters{
		deleted: testutil.ToFloat64(m.Deleted.WithLabelValues("media")),
		absent:  testutil.ToFloat64(m.Absent.WithLabelValues("media")),
		kept:    testutil.ToFloat64(m.KeptReferenced.WithLabelValues("media")),
		failed:  map[string]float64{},
	}
	for _, r := range cdccleaner.Reasons() {
		if v := testutil.ToFloat64(m.Failed.WithLabelValues("media", r)); v != 0 {
			c.failed[r] = v
		}
	}
	return c
}

func TestSettle(t *testing.T) {
	isDir := cdccleaner.Permanent(cdccleaner.ReasonIsDirectory, errors.New("remove dir/: path is a directory"))
	tests := []struct {
		name  string
		paths []string
		opts  worldOpts

		// Paths passed to Refs, over all calls, in order.
		wantChecked [][]string
		// How often each path was passed to Storage.Delete.
		wantAttempts map[string]int
		// Recorded failures: path -> reason.
		wantRecorded map[string]string
		wantRecCalls int
		want         counters
	}{
		{
			name:         "referenced paths are never passed to Delete",
			paths:        []string{"a.jpg", "b.jpg", "c.jpg"},
			opts:         worldOpts{referenced: []string{"a.jpg", "c.jpg"}},
			wantChecked:  [][]string{{"a.jpg", "b.jpg", "c.jpg"}},
			wantAttempts: map[string]int{"b.jpg": 1},
			want:         counters{deleted: 1, kept: 2},
		},
		{
			name:         "all referenced: nothing is deleted",
			paths:        []string{"a.jpg", "b.jpg"},
			opts:         worldOpts{referenced: []string{"a.jpg", "b.jpg"}},
			wantChecked:  [][]string{{"a.jpg", "b.jpg"}},
			wantAttempts: map[string]int{},
			want:         counters{kept: 2},
		},
		{
			name:         "unreferenced paths are deleted or found absent",
			paths:        []string{"a.jpg", "gone.jpg", "dir/b c.jpg"},
			opts:         worldOpts{script: map[string]script{"gone.jpg": {absent: true}}},
			wantChecked:  [][]string{{"a.jpg", "gone.jpg", "dir/b c.jpg"}},
			wantAttempts: map[string]int{"a.jpg": 1, "gone.jpg": 1, "dir/b c.jpg": 1},
			want:         counters{deleted: 2, absent: 1},
		},
		{
			name:        "invalid paths never reach Refs or Storage and are recorded as rejected_path",
			paths:       []string{"../x", "/abs", "a//b", "", "a/../b", "./a", "nul\x00.jpg", "ok.jpg"},
			wantChecked: [][]string{{"ok.jpg"}},
			wantAttempts: map[string]int{
				"ok.jpg": 1,
			},
			wantRecorded: map[string]string{
				"../x": "rejected_path", "/abs": "rejected_path", "a//b": "rejected_path", "": "rejected_path",
				"a/../b": "rejected_path", "./a": "rejected_path", "nul\x00.jpg": "rejected_path",
			},
			wantRecCalls: 1,
			want:         counters{deleted: 1, failed: map[string]float64{"rejected_path": 7}},
		},
		{
			name:         "only invalid paths: Refs and Storage are not called",
			paths:        []string{"../x", "/abs"},
			wantAttempts: map[string]int{},
			wantRecorded: map[string]string{"../x": "rejected_path", "/abs": "rejected_path"},
			wantRecCalls: 1,
			want:         counters{failed: map[string]float64{"rejected_path": 2}},
		},
		{
			name:  "transient storage errors are retried until success and not recorded",
			paths: []string{"flaky.jpg", "ok.jpg"},
			opts:  worldOpts{script: map[string]script{"flaky.jpg": {transient: 3}}},
			// Every retry checks the references again first.
			wantChecked:  [][]string{{"flaky.jpg", "ok.jpg"}, {"flaky.jpg"}, {"flaky.jpg"}, {"flaky.jpg"}},
			wantAttempts: map[string]int{"flaky.jpg": 4, "ok.jpg": 1},
			want:         counters{deleted: 2},
		},
		{
			name:         "permanent errors are recorded with their reason and not retried",
			paths:        []string{"dir", "ok.jpg"},
			opts:         worldOpts{script: map[string]script{"dir": {permanent: isDir}}},
			wantChecked:  [][]string{{"dir", "ok.jpg"}},
			wantAttempts: map[string]int{"dir": 1, "ok.jpg": 1},
			wantRecorded: map[string]string{"dir": "is_directory"},
			wantRecCalls: 1,
			want:         counters{deleted: 1, failed: map[string]float64{"is_directory": 1}},
		},
		{
			name:         "reference check errors are retried and nothing is deleted meanwhile",
			paths:        []string{"a.jpg", "b.jpg"},
			opts:         worldOpts{refsFail: 3, referenced: []string{"b.jpg"}},
			wantChecked:  [][]string{{"a.jpg", "b.jpg"}, {"a.jpg", "b.jpg"}, {"a.jpg", "b.jpg"}, {"a.jpg", "b.jpg"}},
			wantAttempts: map[string]int{"a.jpg": 1},
			want:         counters{deleted: 1, kept: 1},
		},
		{
			name:         "recorder errors are retried until the failures are recorded",
			paths:        []string{"../x", "ok.jpg"},
			opts:         worldOpts{recFail: 3},
			wantChecked:  [][]string{{"ok.jpg"}},
			wantAttempts: map[string]int{"ok.jpg": 1},
			wantRecorded: map[string]string{"../x": "rejected_path"},
			wantRecCalls: 4,
			want:         counters{deleted: 1, failed: map[string]float64{"rejected_path": 1}},
		},
		{
			name:         "duplicate paths in one batch are checked and deleted once",
			paths:        []string{"a.jpg", "b.jpg", "a.jpg", "../x", "a.jpg", "../x"},
			wantChecked:  [][]string{{"a.jpg", "b.jpg"}},
			wantAttempts: map[string]int{"a.jpg": 1, "b.jpg": 1},
			wantRecorded: map[string]string{"../x": "rejected_path"},
			wantRecCalls: 1,
			want:         counters{deleted: 2, failed: map[string]float64{"rejected_path": 1}},
		},
		{
			name:  "dry run deletes nothing and records nothing",
			paths: []string{"a.jpg", "b.jpg", "../x", "dir"},
			opts: worldOpts{
				dryRun:     true,
				referenced: []string{"b.jpg"},
				script:     map[string]script{"dir": {permanent: isDir}},
			},
			wantChecked:  [][]string{{"a.jpg", "b.jpg", "dir"}},
			wantAttempts: map[string]int{},
			want:         counters{kept: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.opts)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := w.p.settle(ctx, mediaBatch(1, tt.paths...)); err != nil {
				t.Fatalf("settle: %v", err)
			}
			if got := w.refs.callsCopy(); !slices.EqualFunc(got, tt.wantChecked, slices.Equal) {
				t.Errorf("reference checks = %q, want %q", got, tt.wantChecked)
			}
			if got := w.storage.attemptsCopy(); !maps.Equal(got, tt.wantAttempts) && !(len(got) == 0 && len(tt.wantAttempts) == 0) {
				t.Errorf("delete attempts = %v, want %v", got, tt.wantAttempts)
			}
			calls, recorded := w.rec.snapshot()
			if calls != tt.wantRecCalls {
				t.Errorf("RecordFailures called %d times, want %d", calls, tt.wantRecCalls)
			}
			gotRecorded := map[string]string{}
			for _, f := range recorded {
				if _, dup := gotRecorded[f.Path]; dup {
					t.Errorf("path %q recorded twice", f.Path)
				}
				gotRecorded[f.Path] = f.Reason
				if f.Detail == "" || f.Storage != "media" || f.Source != "public.photo.image" || f.Txn != 1 || f.CommitLSN != 150 {
					t.Errorf("failure record %+v lacks the candidate or the error text", f)
				}
			}
			if !maps.Equal(gotRecorded, tt.wantRecorded) && !(len(gotRecorded) == 0 && len(tt.wantRecorded) == 0) {
				t.Errorf("recorded failures = %q, want %q", gotRecorded, tt.wantRecorded)
			}
			got := readCounters(w.p)
			if got.deleted != tt.want.deleted || got.absent != tt.want.absent || got.kept != tt.want.kept ||
				!maps.Equal(got.failed, tt.want.failed) && !(len(got.failed) == 0 && len(tt.want.failed) == 0) {
				t.Errorf("metrics = %+v, want %+v", got, tt.want)
			}
			// Nothing may be deleted before a successful reference check.
			okCheck := false
			for _, e := range w.ev.list() {
				if strings.HasPrefix(e, "refs [") {
					okCheck = true
				}
				if strings.HasPrefix(e, "delete ") && e != "delete []" && !okCheck {
					t.Errorf("deleted before any successful reference check; events: %q", w.ev.list())
					break
				}
			}
		})
	}
}

// TestSettleRecheckBeforeRetry checks that a retry of a transient storage
// failure checks the references again: a path that became referenced while
// storage was failing is kept.
func TestSettleRecheckBeforeRetry(t *testing.T) {
	w := newWorld(t, worldOpts{script: map[string]script{"flaky.jpg": {transient: 1}}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// After the first failed delete, a row starts referencing the path again.
	w.p.cfg.Refs = &refsAfterFirstDelete{fakeRefs: w.refs, storage: w.storage, path: "flaky.jpg"}
	if err := w.p.settle(ctx, mediaBatch(1, "flaky.jpg")); err != nil {
		t.Fatal(err)
	}
	if got := w.storage.attemptsCopy()["flaky.jpg"]; got != 1 {
		t.Errorf("flaky.jpg passed to Delete %d times; want 1: it is referenced again before the retry", got)
	}
	if got := readCounters(w.p); got.kept != 1 || got.deleted != 0 {
		t.Errorf("metrics = %+v, want kept 1, deleted 0", got)
	}
}

// refsAfterFirstDelete reports path as referenced once the storage saw it.
type refsAfterFirstDelete struct {
	*fakeRefs
	storage *fakeStorage
	path    string
}

func (r *refsAfterFirstDelete) Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	got, err := r.fakeRefs.Referenced(ctx, storage, paths)
	if err == nil && r.storage.attemptsCopy()[r.path] > 0 {
		got[r.path] = true
	}
	return got, err
}

func TestSettleStopsWhenContextEnds(t *testing.T) {
	tests := []struct {
		name string
		opts worldOpts
		// cancelIn names the fake that ends ctx from inside its call, so
		// that ctx ends while it runs rather than during a backoff;
		// "" lets ctx time out.
		cancelIn    string
		wantDeleted float64
	}{
		{name: "hanging storage", opts: worldOpts{script: map[string]script{"a.jpg": {hang: true}}}},
		{name: "storage failing transiently forever", opts: worldOpts{script: map[string]script{"a.jpg": {transient: -1}}}},
		{name: "reference check failing forever", opts: worldOpts{refsFail: 1 << 30}},
		{name: "reference check failing as ctx ends", opts: worldOpts{refsFail: 1 << 30}, cancelIn: "refs"},
		{name: "recorder failing forever", opts: worldOpts{recFail: 1 << 30}, wantDeleted: 1},
		{name: "recorder failing as ctx ends", opts: worldOpts{recFail: 1 << 30}, cancelIn: "record", wantDeleted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.opts)
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			switch tt.cancelIn {
			case "refs":
				w.refs.hook = cancel
			case "record":
				w.rec.hook = cancel
			}
			start := time.Now()
			err := w.p.settle(ctx, mediaBatch(1, "a.jpg", "../x"))
			if err == nil {
				t.Fatal("settle returned nil after ctx ended without settling: the batch would be acknowledged")
			}
			if !errors.Is(err, ctx.Err()) {
				t.Errorf("settle error = %v, want the context's error %v", err, ctx.Err())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("settle took %v to notice the end of ctx", d)
			}
			// A failure that was not recorded is not counted either.
			if got := readCounters(w.p); got.deleted != tt.wantDeleted || len(got.failed) != 0 {
				t.Errorf("metrics = %+v, want %v deleted and nothing failed", got, tt.wantDeleted)
			}
		})
	}
}

func TestWork(t *testing.T) {
	t.Run("confirms only after every candidate settled", func(t *testing.T) {
		w := newWorld(t, worldOpts{
			referenced: []string{"kept.jpg"},
			script: map[string]script{
				"gone.jpg":  {absent: true},
				"flaky.jpg": {transient: 2},
			},
		})
		tr := replication.NewTracker(100)
		tr.Begin(1)
		first := mediaBatch(1, "a.jpg", "kept.jpg", "../x")
		second := mediaBatch(1, "gone.jpg", "flaky.jpg", "a.jpg") // a.jpg again: one decision per batch
		tr.Emitted(1, len(first.cands)+len(second.cands))
		tr.Commit(1, 200)

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		in := make(chan *batch, 1)
		in <- first
		close(in)
		if err := w.p.work(ctx, tr, newOrder(), in); err != nil {
			t.Fatalf("work: %v", err)
		}
		if got := tr.Confirmed(); got != 100 {
			t.Fatalf("Confirmed = %d after the first of two batches, want 100", got)
		}
		if got := testutil.ToFloat64(w.p.cfg.Metrics.ConfirmedLSN); got != 100 {
			t.Errorf("confirmed_lsn metric = %v, want 100", got)
		}

		in = make(chan *batch, 1)
		in <- second
		close(in)
		if err := w.p.work(ctx, tr, newOrder(), in); err != nil {
			t.Fatalf("work: %v", err)
		}
		if got := tr.Confirmed(); got != 200 {
			t.Fatalf("Confirmed = %d after every batch settled, want 200", got)
		}
		if tr.Pending() != 0 {
			t.Errorf("Pending = %d, want 0", tr.Pending())
		}
		if got := testutil.ToFloat64(w.p.cfg.Metrics.ConfirmedLSN); got != 200 {
			t.Errorf("confirmed_lsn metric = %v, want 200", got)
		}
		want := counters{deleted: 3, absent: 1, kept: 1, failed: map[string]float64{"rejected_path": 1}}
		if got := readCounters(w.p); got.deleted != want.deleted || got.absent != want.absent || got.kept != want.kept || !maps.Equal(got.failed, want.failed) {
			t.Errorf("metrics = %+v, want %+v", got, want)
		}
	})

	t.Run("unsettled batch is not acknowledged when ctx ends", func(t *testing.T) {
		w := newWorld(t, worldOpts{script: map[string]script{"b.jpg": {transient: -1}}})
		tr := replication.NewTracker(100)
		tr.Begin(1)
		b := mediaBatch(1, "a.jpg", "b.jpg")
		tr.Emitted(1, len(b.cands))
		tr.Commit(1, 200)

		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		in := make(chan *batch, 1)
		in <- b
		close(in)
		done := make(chan error, 1)
		go func() { done <- w.p.work(ctx, tr, newOrder(), in) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("work: %v; want nil when ctx ends", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("work did not return after ctx ended")
		}
		if got := tr.Confirmed(); got != 100 {
			t.Errorf("Confirmed = %d, want 100: b.jpg was never deleted", got)
		}
		if tr.Pending() != 1 {
			t.Errorf("Pending = %d, want 1", tr.Pending())
		}
		if got := w.storage.attemptsCopy()["b.jpg"]; got < 2 {
			t.Errorf("b.jpg tried %d times, want retries", got)
		}
	})

	t.Run("returns when ctx ends while waiting for a batch", func(t *testing.T) {
		w := newWorld(t, worldOpts{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := w.p.work(ctx, replication.NewTracker(100), newOrder(), make(chan *batch)); err != nil {
			t.Errorf("work: %v", err)
		}
	})
}

// droppingStorage breaks the Storage contract: it answers only for the
// first path of each call (and deletes only that one).
type droppingStorage struct {
	mu      sync.Mutex
	deleted []string
}

func (s *droppingStorage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(paths) == 0 {
		return nil
	}
	s.deleted = append(s.deleted, paths[0])
	return []cdccleaner.Result{{Path: paths[0], Outcome: cdccleaner.Deleted}}
}

// TestSettleRetriesPathsAStorageDidNotAnswer: a path without a result is
// neither settled nor recorded; it is retried until the storage answers.
func TestSettleRetriesPathsAStorageDidNotAnswer(t *testing.T) {
	s := &droppingStorage{}
	p, err := New(Config{
		Storages: map[string]cdccleaner.Storage{"media": s},
		Refs:     &fakeRefs{ev: &events{}, referenced: map[string]bool{}},
		Failures: &fakeRecorder{ev: &events{}},
		Logger:   zerolog.New(zerolog.TestWriter{T: t}),
		RetryMin: time.Millisecond,
		RetryMax: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.settle(context.Background(), mediaBatch(1, "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.deleted, ","); got != "a,b,c" {
		t.Fatalf("deleted %q, want each path once, in turn", got)
	}
}

// TestSettleWaitsForVisibility: references are not checked before the
// transactions are visible to new snapshots.
func TestSettleWaitsForVisibility(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.refs.invisible = 3
	if err := w.p.settle(context.Background(), mediaBatch(1, "a.jpg")); err != nil {
		t.Fatal(err)
	}
	got := w.ev.list()
	want := []string{"not visible [0]", "not visible [0]", "not visible [0]", `refs ["a.jpg"]`}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("events %q, want to start with %q", got, want)
	}
}

// TestSettlePermissionPatience: a path refused for lack of permission is
// retried (a directory made read-only for a while), and once that lasts
// longer than PermissionPatience it is recorded as permission_denied
// instead of holding the slot forever.
func TestSettlePermissionPatience(t *testing.T) {
	t.Run("denied for a while, then deleted", func(t *testing.T) {
		w := newWorld(t, worldOpts{script: map[string]script{"ro.jpg": {denied: 3}}})
		w.p.cfg.PermissionPatience = time.Hour
		if err := w.p.settle(context.Background(), mediaBatch(1, "ro.jpg")); err != nil {
			t.Fatal(err)
		}
		if c := readCounters(w.p); c.deleted != 1 {
			t.Fatalf("counters %+v, want 1 deleted", c)
		}
		if _, recorded := w.rec.snapshot(); len(recorded) != 0 {
			t.Fatalf("recorded %v", recorded)
		}
	})
	t.Run("denied for longer than the patience", func(t *testing.T) {
		w := newWorld(t, worldOpts{script: map[string]script{"owned.jpg": {denied: -1}, "fine.jpg": {}}})
		w.p.cfg.PermissionPatience = 20 * time.Millisecond
		if err := w.p.settle(context.Background(), mediaBatch(1, "owned.jpg", "fine.jpg")); err != nil {
			t.Fatal(err)
		}
		_, recorded := w.rec.snapshot()
		if len(recorded) != 1 || recorded[0].Path != "owned.jpg" || recorded[0].Reason != cdccleaner.ReasonPermissionDenied {
			t.Fatalf("recorded %+v, want owned.jpg as permission_denied", recorded)
		}
		if c := readCounters(w.p); c.deleted != 1 {
			t.Fatalf("counters %+v, want fine.jpg deleted", c)
		}
	})
}

// TestSettleDeleteDelay: nothing is checked or deleted before commit time
// plus the delay; a candidate already past it goes at once.
func TestSettleDeleteDelay(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.p.cfg.DeleteDelay = 300 * time.Millisecond
	b := mediaBatch(1, "a.jpg")
	commit := time.Now()
	b.cands[0].CommitTime = commit
	if err := w.p.settle(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if since := time.Since(commit); since < w.p.cfg.DeleteDelay {
		t.Fatalf("settled %s after commit, before the %s delay", since, w.p.cfg.DeleteDelay)
	}
	if n := w.storage.attemptsCopy()["a.jpg"]; n != 1 {
		t.Fatalf("a.jpg deleted %d times, want 1", n)
	}

	// Long past its delay: no wait (the test would time out otherwise).
	w2 := newWorld(t, worldOpts{})
	w2.p.cfg.DeleteDelay = time.Hour
	old := mediaBatch(1, "b.jpg")
	old.cands[0].CommitTime = time.Now().Add(-2 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w2.p.settle(ctx, old); err != nil {
		t.Fatal(err)
	}

	// Stopping during the wait leaves the batch unsettled.
	w3 := newWorld(t, worldOpts{})
	w3.p.cfg.DeleteDelay = time.Hour
	ctx3, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel3()
	if err := w3.p.settle(ctx3, mediaBatch(1, "c.jpg")); err == nil {
		t.Fatal("settle returned nil although stopped during the delay")
	}
	if n := w3.storage.attemptsCopy()["c.jpg"]; n != 0 {
		t.Fatalf("c.jpg deleted during the delay")
	}
}
