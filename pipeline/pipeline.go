package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/decoder"
	"github.com/cdc-cleaner/cdc-cleaner/metrics"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

// Config is everything a Pipeline needs.
type Config struct {
	Stream replication.StreamConfig
	// Columns are the watched and protect columns, as inspection found
	// them (their types as the catalog describes them); the decoder
	// watches those that are not Protect.
	Columns  []cdccleaner.Column
	Storages map[string]cdccleaner.Storage
	Refs     cdccleaner.ReferenceChecker
	Failures cdccleaner.FailureRecorder
	Metrics  *metrics.Metrics
	Logger   zerolog.Logger

	// DeleteDelay makes every candidate wait until its commit time plus the
	// delay; references are checked after the wait, right before deleting,
	// and the LSN is held meanwhile.
	DeleteDelay time.Duration

	// ResolveType describes a type the decoder meets later (a column
	// retyped while running) as the catalog does; found is false when the
	// catalog has no such type (dropped since). Without it, or for a type
	// not found, the stream holds as at a schema problem.
	ResolveType func(ctx context.Context, oid uint32) (t cdccleaner.ColumnType, found bool, err error)

	// ExplainMissing says, from the catalog, what became of a watched
	// column a Relation message lacks (schema, table, column as
	// configured) and what to do, for the log of a hold; "" when it
	// cannot tell.
	ExplainMissing func(ctx context.Context, schema, table, column string) string

	// Messages names the storages whose cdc_cleaner logical decoding
	// messages are honoured (messages: true). Any role that can log in may
	// emit one, so a message naming another storage is ignored and counted.
	Messages []string

	// Journal keeps every removal and what became of the paths referenced
	// again (promise 7). Without it (tests of other things), new
	// references are not compared with anything.
	Journal cdccleaner.Journal
	// Standbys, when set, makes the journal's removal entries reach the
	// physical standbys of synchronized_standby_slots before the files
	// they describe move, so that a promoted standby's journal knows every
	// removal done (README: Failover).
	Standbys Standbys
	// Trash describes, per storage with trash on, where removed files go
	// and how long they stay there (the undo window); a storage without
	// trash is absent. The journal says where a file is going before it
	// goes there.
	Trash map[string]Trash

	// Keep holds, per storage, glob patterns of paths never deleted (a
	// model field's default file, say). See cdccleaner.MatchPattern for the
	// syntax.
	Keep map[string][]string

	// DryRun decides and logs as usual but deletes nothing, records nothing
	// and never confirms an LSN.
	DryRun bool

	// BatchSize is the most paths checked and deleted together (default 500).
	BatchSize int
	// Workers is how many batches are settled at once (default 4).
	Workers int
	// ShutdownGrace is how long a stop waits for in-flight batches to settle
	// before abandoning them unacknowledged (default 5s).
	ShutdownGrace time.Duration
	// RetryMin and RetryMax bound the backoff between retries of transient
	// failures and reconnects (defaults 500ms and 30s).
	RetryMin, RetryMax time.Duration
	// SlotBusyRetry is how often a standby asks for a slot that another
	// process holds (default 2s).
	SlotBusyRetry time.Duration
	// PermissionPatience is how long a path is retried while the storage
	// refuses it for lack of permission before it is recorded as failed
	// (default 10m): long enough to outlast a directory made read-only for
	// a while, short enough that one file owned by someone else cannot hold
	// the slot forever.
	PermissionPatience time.Duration
}

// Standbys waits for the standbys a failover may promote (journal.Standbys).
type Standbys interface {
	WaitWritten(ctx context.Context, warn func(names []string, waited time.Duration)) error
}

// Trash is where one storage's trash is and how long it keeps files.
type Trash struct {
	// Prefix is trash_prefix: a removed file p goes to Prefix+p.
	Prefix string
	// Retention is trash_retention, the undo window.
	Retention time.Duration
}

// Pipeline streams from the slot and settles candidates until stopped.
type Pipeline struct {
	cfg         Config
	maxBatchAge time.Duration
	log         zerolog.Logger
	streaming   atomic.Bool
	stats       stats

	// held says why the stream is held at a schema change, or is nil.
	held atomic.Pointer[string]
	// schemaProblem says what the catalog check found wrong, or is nil.
	schemaProblem atomic.Pointer[string]

	// absence watches the share of already absent files per storage.
	absence *absenceWatch
	// visible remembers transactions seen visible (waitVisible).
	visible visibleSet
	// replayHorizon is, for the current session, the highest commit LSN
	// the journal recorded recently: removals at or below it may be
	// replays of work settled before (markReplays). 0: none.
	replayHorizon atomic.Uint64

	typesMu sync.Mutex
	types   map[uint32]cdccleaner.ColumnType // learned from the catalog, for every session
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Pipeline, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.SlotBusyRetry <= 0 {
		cfg.SlotBusyRetry = 2 * time.Second
	}
	if cfg.PermissionPatience <= 0 {
		cfg.PermissionPatience = 10 * time.Minute
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Refs == nil || cfg.Failures == nil || len(cfg.Storages) == 0 {
		return nil, errors.New("pipeline needs a reference checker, a failure recorder and at least one storage")
	}
	for _, name := range cfg.Messages {
		if cfg.Storages[name] == nil {
			return nil, fmt.Errorf("messages are honoured for storage %q, which is not configured", name)
		}
	}
	for _, c := range cfg.Columns {
		if cfg.Storages[c.Storage] == nil {
			return nil, fmt.Errorf("table %s.%s names storage %q, which is not configured", c.Schema, c.Table, c.Storage)
		}
	}
	for storage, patterns := range cfg.Keep {
		for _, pat := range patterns {
			if err := cdccleaner.ValidPattern(pat); err != nil {
				return nil, fmt.Errorf("storages.%s.keep: %w", storage, err)
			}
		}
	}
	fromZero(cfg.Metrics, cfg.Storages, cfg.Columns)
	cfg.Stream.Confirm = !cfg.DryRun
	p := &Pipeline{
		cfg:         cfg,
		maxBatchAge: defaultMaxBatchAge,
		log:         cfg.Logger.With().Str("component", "pipeline").Logger(),
		types:       map[uint32]cdccleaner.ColumnType{},
		absence:     newAbsenceWatch(cfg.Metrics.AbsentRatio),
	}
	p.stats.last = time.Now()
	return p, nil
}

// Streaming reports whether the pipeline currently streams from the slot.
func (p *Pipeline) Streaming() bool { return p.streaming.Load() }

// Ready reports whether the pipeline streams and cleans as configured: it
// is not ready while it does not stream, while the stream is held at a
// schema change the configuration does not fit, or while the catalog check
// finds a problem (SetSchemaProblem). why says what is wrong.
func (p *Pipeline) Ready() (ok bool, why string) {
	switch {
	case !p.Streaming():
		return false, "not streaming"
	case p.held.Load() != nil:
		return false, "held: " + *p.held.Load()
	case p.schemaProblem.Load() != nil:
		return false, "schema problem: " + *p.schemaProblem.Load()
	}
	return true, "streaming"
}

// SetSchemaProblem records what a check of the database against the
// configuration found wrong while running ("" for nothing), for Ready.
func (p *Pipeline) SetSchemaProblem(problem string) {
	if problem == "" {
		p.schemaProblem.Store(nil)
		return
	}
	p.schemaProblem.Store(&problem)
}

// Run streams and settles until ctx ends, then returns nil. It reconnects
// with capped backoff after errors, and waits as a standby while another
// process holds the slot. It returns an error only when going on is
// pointless: the slot was dropped.
func (p *Pipeline) Run(ctx context.Context) error {
	retry := newBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	waitingFor := 0 // PID holding the slot, logged once per holder
	for {
		started := time.Now()
		err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if replication.IsFatal(err) {
			return err
		}
		if pid, ok := replication.IsSlotInUse(err); ok {
			if pid != waitingFor {
				p.log.Info().Str("slot", p.cfg.Stream.Slot).Int("pid", pid).
					Msgf("slot is in use by PID %d; waiting (standby)", pid)
				waitingFor = pid
			}
			if !sleep(ctx, p.cfg.SlotBusyRetry) {
				return nil
			}
			continue
		}
		waitingFor = 0
		if time.Since(started) > time.Minute {
			retry.Reset()
		}
		p.log.Error().Err(err).Dur("retry_in", retry.Next()).Msg("replication stopped; reconnecting")
		if !retry.Wait(ctx) {
			return nil
		}
	}
}

// session runs one replication connection until it fails or ctx ends.
// Everything in flight belongs to the session: when the connection is lost,
// unsettled work is abandoned unacknowledged and the next session replays it
// from the slot.
func (p *Pipeline) session(ctx context.Context) error {
	st, err := replication.OpenStream(ctx, p.cfg.Stream)
	if err != nil {
		return err
	}
	dec := p.newDecoder()
	tracker := replication.NewTracker(st.SlotStart())
	p.replayHorizon.Store(0)
	if h, ok := p.cfg.Journal.(cdccleaner.JournalHorizon); ok && !p.cfg.DryRun {
		if lsn, err := h.Horizon(ctx, replayWindow); err != nil {
			p.log.Debug().Err(err).Msg("read the journal's horizon; replays are counted as files found absent")
		} else if lsn > st.SlotStart() {
			p.replayHorizon.Store(uint64(lsn))
			p.log.Info().Stringer("from", st.SlotStart()).Stringer("journaled_up_to", lsn).
				Msg("the slot replays transactions whose removals the journal holds (after a restart or a failover); they are checked against it")
		}
	}

	p.log.Info().Str("slot", p.cfg.Stream.Slot).Stringer("from", st.SlotStart()).Bool("dry_run", p.cfg.DryRun).Msg("streaming")
	p.streaming.Store(true)
	p.cfg.Metrics.Streaming.Set(1)
	defer func() {
		p.streaming.Store(false)
		p.cfg.Metrics.Streaming.Set(0)
	}()

	defer func() {
		p.held.Store(nil)
		p.cfg.Metrics.Held.Set(0)
	}()

	msgs := make(chan replication.Message, 1024)
	streamDone := make(chan struct{})
	batches := make(chan *batch, p.cfg.Workers)
	// Work continues past ctx so that a stop can let it settle for a while.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	g, gctx := errgroup.WithContext(workCtx)
	ord := newOrder()
	g.Go(func() error { return p.decode(gctx, dec, tracker, ord, msgs, batches, streamDone) })
	for range p.cfg.Workers {
		g.Go(func() error { return p.work(gctx, tracker, ord, batches) })
	}

	// A failing pipeline stops the stream too.
	streamCtx, cancelStream := context.WithCancel(ctx)
	stop := context.AfterFunc(gctx, cancelStream)
	streamErr := st.Run(streamCtx, msgs, tracker.Confirmed)
	stop()
	cancelStream()
	close(streamDone)
	close(msgs)

	var workErr error
	if streamErr == nil && ctx.Err() != nil {
		// Graceful stop: let what was received settle, for a while.
		done := make(chan error, 1)
		go func() { done <- g.Wait() }()
		select {
		case workErr = <-done:
		case <-time.After(p.cfg.ShutdownGrace):
			p.log.Warn().Dur("grace", p.cfg.ShutdownGrace).Int("pending_transactions", tracker.Pending()).
				Msg("stopping with work in flight; it stays unacknowledged and is replayed on the next start")
			cancelWork()
			workErr = <-done
		}
	} else {
		cancelWork()
		workErr = g.Wait()
	}
	final := tracker.Confirmed()
	p.cfg.Metrics.ConfirmedLSN.Set(float64(final))
	if cerr := st.Close(final); cerr != nil && streamErr == nil && workErr == nil && ctx.Err() == nil {
		p.log.Warn().Err(cerr).Msg("close replication connection")
	}
	if ctx.Err() != nil {
		p.log.Info().Stringer("confirmed", final).Msg("stopped")
	}
	if workErr != nil && !errors.Is(workErr, context.Canceled) {
		return workErr
	}
	return streamErr
}

// newDecoder returns a decoder for one session; cdc_cleaner messages are
// honoured for the storages of Config.Messages.
func (p *Pipeline) newDecoder() *decoder.Decoder {
	storages := make(map[string]bool, len(p.cfg.Storages))
	for name := range p.cfg.Storages {
		storages[name] = slices.Contains(p.cfg.Messages, name)
	}
	p.typesMu.Lock()
	types := maps.Clone(p.types)
	p.typesMu.Unlock()
	return decoder.New(p.cfg.Columns, decoder.Messages(storages), decoder.Types(types))
}

// FailureReasons are the reasons a failure can be recorded and counted
// under (cdc_cleaner_failed_total{reason}).
func FailureReasons() []string {
	return slices.Concat(cdccleaner.Reasons(), cdccleaner.DanglingReasons(),
		[]string{decoder.ReasonBadMessage, decoder.ReasonOldValuesMissing, decoder.ReasonTruncated})
}

// changeOps are the operations cdc_cleaner_changes_total counts.
var changeOps = []string{"insert", "update", "delete"}

// fromZero creates every labelled series the pipeline can count, at 0, for
// each configured storage (and each failure reason) and each watched
// table (and each operation), so that rate() and alerts on absent series
// work before the first event (DESIGN.md, Observability).
func fromZero(m *metrics.Metrics, storages map[string]cdccleaner.Storage, columns []cdccleaner.Column) {
	for name := range storages {
		m.Candidates.WithLabelValues(name)
		m.Deleted.WithLabelValues(name)
		m.Absent.WithLabelValues(name)
		m.KeptReferenced.WithLabelValues(name)
		for _, r := range FailureReasons() {
			m.Failed.WithLabelValues(name, r)
		}
		m.MessagesIgnored.WithLabelValues(name)
		m.AbsentRatio.WithLabelValues(name) // 0 until deletions settle
		m.Restored.WithLabelValues(name)
		m.Dangling.WithLabelValues(name)
		m.NewReferences.WithLabelValues(name)
		m.Unprefixed.WithLabelValues(name)
	}
	m.MessagesIgnored.WithLabelValues("") // a message naming no configured storage
	for _, c := range columns {
		if c.Protect {
			continue
		}
		table := c.Schema + "." + c.Table
		for _, op := range changeOps {
			m.Changes.WithLabelValues(table, op)
		}
		m.Truncates.WithLabelValues(table)
		m.OldValuesMissing.WithLabelValues(table)
	}
}

// batch is up to BatchSize candidates of one storage, or as many new
// references of one storage to compare with the journal (refs), or
// failures to record (a cdc_cleaner message that is not a valid request).
type batch struct {
	storage  string
	cands    []cdccleaner.Candidate
	refs     []cdccleaner.Candidate
	failures []cdccleaner.Failure
	started  time.Time // when the first candidate was added

	// after are the batches sent earlier that this one must wait for, and
	// left is closed when it has settled (order.go).
	after []*batch
	left  chan struct{}
}

// isRefs reports whether b holds new references rather than candidates.
func (b *batch) isRefs() bool { return b.refs != nil }

// items are b's candidates or new references.
func (b *batch) items() []cdccleaner.Candidate {
	if b.isRefs() {
		return b.refs
	}
	return b.cands
}

// watchRefs reports whether new references are compared with the journal:
// not in a dry run, which removes nothing, and not without a journal.
func (p *Pipeline) watchRefs() bool { return p.cfg.Journal != nil && !p.cfg.DryRun }

// defaultMaxBatchAge is how long a partial batch may wait for more
// candidates while other messages keep arriving. Without a limit, a rarely
// used storage's partial batch would hold the confirmed LSN through a whole
// backlog.
const defaultMaxBatchAge = 200 * time.Millisecond

// decode turns messages into batches, registering every transaction and
// candidate with the tracker before a worker can see it. It flushes partial
// batches whenever no message is waiting, so that a quiet stream is handled
// at once and a busy one in full batches.
func (p *Pipeline) decode(ctx context.Context, dec *decoder.Decoder, tr *replication.Tracker, ord *order, in <-chan replication.Message, out chan<- *batch, streamDone <-chan struct{}) error {
	defer close(out)
	pending := map[string]*batch{}     // candidates, by storage
	pendingRefs := map[string]*batch{} // new references, by storage
	missed := newMissedChanges()
	send := func(b *batch) error {
		b.left = make(chan struct{})
		ord.enter(b)
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// sendRemovals sends a batch of candidates, after the new references
	// of its storage decoded so far: a removal must wait for those (see
	// order.go), so that its reference check sees them.
	sendRemovals := func(b *batch) error {
		if r := pendingRefs[b.storage]; r != nil {
			delete(pendingRefs, b.storage)
			if err := send(r); err != nil {
				return err
			}
		}
		return send(b)
	}
	// add puts c in the pending batch of its storage in m (pendingRefs
	// when refs), and sends the batch once it is full.
	add := func(m map[string]*batch, c cdccleaner.Candidate, refs bool) error {
		b := m[c.Storage]
		if b == nil {
			b = &batch{storage: c.Storage, started: time.Now()}
			if refs {
				b.refs = make([]cdccleaner.Candidate, 0, p.cfg.BatchSize)
			} else {
				b.cands = make([]cdccleaner.Candidate, 0, p.cfg.BatchSize)
			}
			m[c.Storage] = b
		}
		if refs {
			b.refs = append(b.refs, c)
		} else {
			b.cands = append(b.cands, c)
		}
		if len(b.items()) < p.cfg.BatchSize {
			return nil
		}
		delete(m, c.Storage)
		if refs {
			return send(b)
		}
		return sendRemovals(b)
	}
	flushAll := func() error {
		for _, m := range []map[string]*batch{pendingRefs, pending} {
			for s, b := range m {
				delete(m, s)
				if err := send(b); err != nil {
					return err
				}
			}
		}
		return nil
	}
	warned := newLimiter(time.Minute)
	unprefixed := map[decoder.Unprefixed]bool{}
	for {
		var m replication.Message
		var ok bool
		select {
		case m, ok = <-in:
		default:
			if err := flushAll(); err != nil {
				return nil
			}
			select {
			case m, ok = <-in:
			case <-ctx.Done():
				return nil
			}
		}
		if !ok {
			if err := flushAll(); err != nil {
				return nil
			}
			return nil
		}
		if m.IsKeepalive() {
			tr.FollowServer(m.WALEnd)
			continue
		}
		ev, err := p.decodeMessage(ctx, dec, m)
		var schemaErr *decoder.SchemaError
		if errors.As(err, &schemaErr) {
			if err := flushAll(); err != nil {
				return nil
			}
			p.hold(ctx, schemaErr, dec.FinalLSN(), tr, streamDone)
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("decode message at %s: %w", m.WALStart, err)
		}
		for _, w := range ev.Warnings {
			if warned.allow(w) {
				p.log.Warn().Msg(w)
			}
		}
		switch ev.Kind {
		case decoder.KindBegin:
			tr.Begin(dec.Txn())
		case decoder.KindCommit:
			// What the transaction could not name is recorded before it
			// may settle.
			for _, b := range missed.failures(dec) {
				for _, f := range b.failures {
					tr.Emitted(f.Txn, 1)
				}
				if err := send(b); err != nil {
					return nil
				}
			}
			tr.Commit(dec.Txn(), ev.EndLSN)
			for st, b := range pendingRefs {
				if time.Since(b.started) >= p.maxBatchAge {
					delete(pendingRefs, st)
					if err := send(b); err != nil {
						return nil
					}
				}
			}
			for st, b := range pending {
				if time.Since(b.started) >= p.maxBatchAge {
					delete(pending, st)
					if err := sendRemovals(b); err != nil {
						return nil
					}
				}
			}
		case decoder.KindChange, decoder.KindMessage:
			if ev.Ignored != "" {
				p.cfg.Metrics.MessagesIgnored.WithLabelValues(ev.IgnoredStorage).Inc()
				if warned.allow("ignored message " + ev.IgnoredStorage) {
					p.log.Warn().Str("storage", ev.IgnoredStorage).Stringer("commit_lsn", dec.FinalLSN()).
						Msgf("ignored a cdc_cleaner logical decoding message: %s; any role that can log in may emit one (README: Logical decoding messages)", ev.Ignored)
				}
			}
			if ev.Kind == decoder.KindChange {
				p.cfg.Metrics.Changes.WithLabelValues(ev.Table, ev.Op).Inc()
			}
			for _, u := range ev.Unprefixed {
				p.cfg.Metrics.Unprefixed.WithLabelValues(u.Storage).Inc()
				if !unprefixed[u] {
					unprefixed[u] = true
					p.log.Debug().Str("storage", u.Storage).Str("source", u.Source).
						Msg("a value starts with none of strip_prefix: it is no path of the storage and is never deleted (logged once per column; cdc_cleaner_unprefixed_values_total counts them)")
				}
			}
			if len(ev.Missed) > 0 {
				p.cfg.Metrics.OldValuesMissing.WithLabelValues(ev.Table).Inc()
				for _, mc := range ev.Missed {
					missed.add(mc)
				}
			}
			if len(ev.Bad) > 0 {
				for _, f := range ev.Bad {
					tr.Emitted(f.Txn, 1)
				}
				if err := send(&batch{storage: ev.Bad[0].Storage, failures: slices.Clone(ev.Bad)}); err != nil {
					return nil
				}
			}
			for _, c := range ev.Candidates {
				tr.Emitted(c.Txn, 1)
				p.cfg.Metrics.Candidates.WithLabelValues(c.Storage).Inc()
				if err := add(pending, c, false); err != nil {
					return nil
				}
			}
			if !p.watchRefs() {
				continue
			}
			for _, c := range ev.References {
				tr.Emitted(c.Txn, 1)
				p.cfg.Metrics.NewReferences.WithLabelValues(c.Storage).Inc()
				if err := add(pendingRefs, c, true); err != nil {
					return nil
				}
			}
		case decoder.KindTruncate:
			for _, t := range ev.Tables {
				p.cfg.Metrics.Truncates.WithLabelValues(t).Inc()
				p.log.Warn().Str("table", t).Msg("TRUNCATE of a watched table: its files cannot be named from the change stream; run `cdc-cleaner scan` to find and remove them")
				missed.truncated(p.cfg.Columns, t)
			}
		}
	}
}

// work settles batches until in is closed or ctx ends.
func (p *Pipeline) work(ctx context.Context, tr *replication.Tracker, ord *order, in <-chan *batch) error {
	for {
		var b *batch
		var ok bool
		select {
		case b, ok = <-in:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
		if err := ord.wait(ctx, b); err != nil {
			return nil
		}
		var err error
		switch {
		case len(b.failures) > 0:
			err = p.record(ctx, b.storage, b.failures)
		case b.isRefs():
			err = p.revive(ctx, b)
		default:
			err = p.settle(ctx, b)
		}
		if err != nil {
			// Only ctx ends a batch early; it stays unacknowledged.
			return nil
		}
		ord.leave(b)
		counts := map[uint64]int{}
		for _, c := range b.items() {
			counts[c.Txn]++
		}
		for _, f := range b.failures {
			counts[f.Txn]++
		}
		for txn, n := range counts {
			tr.Settled(txn, n)
		}
		p.cfg.Metrics.ConfirmedLSN.Set(float64(tr.Confirmed()))
		p.maybeSummarize()
	}
}

// stats are totals for the periodic summary line.
type stats struct {
	mu                                    sync.Mutex
	last                                  time.Time
	deleted, absent, kept, failed, dryRun int64
}

func (p *Pipeline) count(deleted, absent, kept, failed, dryRun int) {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	p.stats.deleted += int64(deleted)
	p.stats.absent += int64(absent)
	p.stats.kept += int64(kept)
	p.stats.failed += int64(failed)
	p.stats.dryRun += int64(dryRun)
}

// maybeSummarize logs totals at info at most every 10 seconds.
func (p *Pipeline) maybeSummarize() {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	if time.Since(p.stats.last) < 10*time.Second {
		return
	}
	p.stats.last = time.Now()
	ev := p.log.Info().Int64("deleted", p.stats.deleted).Int64("absent", p.stats.absent).
		Int64("kept_referenced", p.stats.kept).Int64("failed", p.stats.failed)
	if p.cfg.DryRun {
		ev = ev.Int64("would_delete", p.stats.dryRun)
	}
	ev.Msg("summary since start")
}

// limiter lets a repeated message through at most once per interval.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
}

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, last: map[string]time.Time{}}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && time.Since(t) < l.every {
		return false
	}
	if len(l.last) > 1000 {
		clear(l.last)
	}
	l.last[key] = time.Now()
	return true
}
