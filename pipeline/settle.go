package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// settle decides every candidate of b: kept because referenced, deleted,
// absent, or recorded as failed. Transient trouble (database or storage) is
// retried with backoff without limit; only the end of ctx stops it early,
// with an error, and then nothing of b may be acknowledged.
func (p *Pipeline) settle(ctx context.Context, b *batch) error {
	s := p.prepare(b)
	if len(s.todo) > 0 {
		if err := p.waitDue(ctx, b); err != nil {
			return err
		}
		if err := p.waitVisible(ctx, b); err != nil {
			return err
		}
	}
	storage := p.cfg.Storages[b.storage]
	retry := newBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	deniedSince := map[string]time.Time{} // first permission failure of a path
	warned := false
	for len(s.todo) > 0 {
		refs, err := p.cfg.Refs.Referenced(ctx, b.storage, s.withParents(s.todo))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn().Err(err).Int("paths", len(s.todo)).Dur("retry_in", retry.Next()).Msg("reference check failed; nothing deleted, retrying")
			if !retry.Wait(ctx) {
				return ctx.Err()
			}
			continue
		}
		unreferenced := s.keepReferenced(refs)
		if p.cfg.DryRun {
			s.wouldDelete(unreferenced)
			break
		}
		files, prefixes := s.splitPrefixes(unreferenced)
		var results []cdccleaner.Result
		if len(files) > 0 {
			if !s.replaysChecked {
				s.replaysChecked = true
				p.markReplays(ctx, s, files)
			}
			if err := p.journalIntent(ctx, s, files); err != nil {
				return err
			}
			results = storage.Delete(ctx, files)
		}
		for _, prefix := range prefixes {
			r, err := p.removePrefix(ctx, s, storage, prefix, deniedSince)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		v := classify(b.storage, unreferenced, results, deniedSince, time.Now(), p.cfg.PermissionPatience)
		for _, path := range v.denied {
			deniedSince[path] = time.Now()
		}
		s.apply(v)
		if err := p.journalCorrections(ctx, s, results); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.todo = v.retry
		if len(s.todo) > 0 {
			if !warned || retry.Capped() {
				s.log.Warn().Err(v.firstErr).Int("paths", len(s.todo)).Dur("retry_in", retry.Next()).
					Msg("storage failed transiently; holding the LSN and retrying")
				warned = true
			}
			if !retry.Wait(ctx) {
				return ctx.Err()
			}
		}
	}
	if len(s.failures) > 0 {
		if err := p.record(ctx, b.storage, s.failures); err != nil {
			return err
		}
	}
	p.count(s.deleted, s.absent, s.kept, len(s.failures), s.wouldDeleteN)
	if s.replays > 0 {
		s.log.Info().Int("replayed", s.replays).Msg("removals replayed from the slot were done before, by the same transactions (the journal says so): a restart or a failover replays what the slot had not confirmed; nothing was done twice")
	}
	return nil
}

// replayWindow is how far back Horizon looks: replays follow a crash or a
// failover, and the slot had confirmed all but the last moments.
const replayWindow = time.Hour

// markReplays marks, among the paths about to be removed, those whose
// removal by the same transaction the journal already holds: a session
// replaying what a crashed process, or a failed primary, settled but had
// not confirmed. They are removed as usual (removal is idempotent: a file
// moved before is found absent, or moved now if the move was cut short);
// only the count differs, so that a replay is not taken for files
// missing. It asks the journal only for candidates at or below the
// horizon the session found, and gives up quietly: it changes counts and
// logs, never what is removed.
func (p *Pipeline) markReplays(ctx context.Context, s *settlement, files []string) {
	horizon := cdccleaner.LSN(p.replayHorizon.Load())
	if horizon == 0 || p.cfg.Journal == nil {
		return
	}
	var paths []string
	var upTo []cdccleaner.LSN
	for _, path := range files {
		if c := s.newest(path); c.CommitLSN <= horizon {
			paths, upTo = append(paths, path), append(upTo, c.CommitLSN)
		}
	}
	if len(paths) == 0 {
		return
	}
	latest, err := p.cfg.Journal.Latest(ctx, s.storage, paths, upTo)
	if err != nil {
		s.log.Debug().Err(err).Msg("could not tell replayed removals from new ones; counting them as usual")
		return
	}
	for i, path := range paths {
		e, ok := latest[path]
		if ok && e.CommitLSN == upTo[i] && (e.Event == cdccleaner.JournalTrashed || e.Event == cdccleaner.JournalDeleted) {
			if s.replayed == nil {
				s.replayed = map[string]bool{}
			}
			s.replayed[path] = true
		}
	}
}

// settlement is what settle has decided so far about one batch.
type settlement struct {
	p       *Pipeline
	storage string
	log     zerolog.Logger
	// first is the first candidate of each distinct path: it stands for
	// the others in logs and failure records. newer holds, for a path
	// that vanished again later in the batch, its newest candidate, which
	// the journal records.
	first map[string]cdccleaner.Candidate
	newer map[string]cdccleaner.Candidate
	// intents holds the paths whose removal is journaled, with the trash
	// location journaled ("" for a deletion).
	intents map[string]string
	// parents holds, for a derived path, the paths it derives from: it is
	// kept while any of them is referenced.
	parents map[string][]string
	todo    []string // paths still to decide, each once

	deleted, absent, kept, wouldDeleteN int
	failures                            []cdccleaner.Failure

	// replayed holds the paths whose removal, by the same transaction,
	// the journal recorded before this batch (markReplays): found absent,
	// they were settled before, not lost. replays counts them.
	replayed       map[string]bool
	replaysChecked bool
	replays        int
}

// prepare takes one decision per distinct path of b: a path that matches
// a keep pattern is kept, one that is not a valid path fails, the others
// are left to decide.
func (p *Pipeline) prepare(b *batch) *settlement {
	s := &settlement{p: p, storage: b.storage, log: p.log.With().Str("storage", b.storage).Logger(), first: map[string]cdccleaner.Candidate{}}
	keep := p.cfg.Keep[b.storage]
	trash := p.trashPrefix(b.storage)
	for _, c := range b.cands {
		if c.Parent != "" {
			s.addParent(c.Path, c.Parent)
		}
		if f, seen := s.first[c.Path]; seen {
			if c.CommitLSN > f.CommitLSN {
				if s.newer == nil {
					s.newer = map[string]cdccleaner.Candidate{}
				}
				s.newer[c.Path] = c
			}
			continue
		}
		s.first[c.Path] = c
		if cdccleaner.MatchPattern(keep, c.Path) || c.Parent != "" && cdccleaner.MatchPattern(keep, c.Parent) {
			s.kept++
			p.cfg.Metrics.KeptReferenced.WithLabelValues(b.storage).Inc()
			s.log.Debug().Str("path", c.Path).Str("parent", c.Parent).Str("source", c.Source).Msg("kept: matches a keep pattern, or derives from a path that does")
			continue
		}
		if c.Parent != "" && trash != "" && strings.HasPrefix(c.Path, trash) {
			// A row's value must not reach the undo window of every other
			// removal: a derived prefix there would empty the trash.
			s.failures = append(s.failures, failure(c, cdccleaner.Permanent(cdccleaner.ReasonRejectedPath,
				fmt.Errorf("derived path %q of %q lies in the trash (%s): never removed", c.Path, c.Parent, trash))))
			continue
		}
		// A prefix "/" is rejected here too: trimmed, it is the empty path.
		if err := cdccleaner.ValidatePath(strings.TrimSuffix(c.Path, "/")); err != nil {
			s.failures = append(s.failures, failure(c, err))
			continue
		}
		if !c.IsPrefix() && strings.HasSuffix(c.Path, "/") {
			s.failures = append(s.failures, failure(c, cdccleaner.Permanent(cdccleaner.ReasonRejectedPath,
				fmt.Errorf("%q ends in /: it names a directory, not a file", c.Path))))
			continue
		}
		s.todo = append(s.todo, c.Path)
	}
	return s
}

// newest is the newest candidate of path in the batch.
func (s *settlement) newest(path string) cdccleaner.Candidate {
	if c, ok := s.newer[path]; ok {
		return c
	}
	return s.first[path]
}

// keepReferenced keeps the paths to decide that refs says are referenced,
// and returns the others.
func (s *settlement) keepReferenced(refs map[string]bool) []string {
	var unreferenced []string
	for _, path := range s.todo {
		if refs[path] {
			s.kept++
			s.p.cfg.Metrics.KeptReferenced.WithLabelValues(s.storage).Inc()
			s.log.Debug().Str("path", path).Str("source", s.first[path].Source).Msg("kept: still referenced")
			continue
		}
		if parent := s.referencedParent(path, refs); parent != "" {
			s.kept++
			s.p.cfg.Metrics.KeptReferenced.WithLabelValues(s.storage).Inc()
			s.log.Debug().Str("path", path).Str("parent", parent).Str("source", s.first[path].Source).Msg("kept: derived from a path still referenced")
			continue
		}
		unreferenced = append(unreferenced, path)
	}
	return unreferenced
}

// wouldDelete logs, in a dry run, what would be deleted.
func (s *settlement) wouldDelete(paths []string) {
	for _, path := range paths {
		s.wouldDeleteN++
		c := s.first[path]
		s.log.Info().Str("path", path).Str("source", c.Source).Stringer("commit_lsn", c.CommitLSN).Msg("dry run: would delete")
	}
}

// apply counts and logs the verdicts of one deletion round, and adds them
// to the storage's window of recent outcomes (absence.go). A dry run never
// gets here: it asks no storage.
func (s *settlement) apply(v verdicts) {
	m := s.p.cfg.Metrics
	own := 0 // deletions of paths rows named, not derived ones
	for _, path := range v.deleted {
		c := s.first[path]
		s.deleted++
		if c.Parent == "" {
			own++
		}
		if c.IsPrefix() {
			continue // its files were counted as removePrefix deleted them
		}
		m.Deleted.WithLabelValues(s.storage).Inc()
		m.DeleteLatency.Observe(time.Since(c.CommitTime).Seconds())
		s.log.Debug().Str("path", path).Str("source", c.Source).Stringer("commit_lsn", c.CommitLSN).Msg("deleted")
	}
	var absent []string // of paths rows named: a derived file often never existed
	for _, path := range v.absent {
		c := s.first[path]
		if s.replayed[path] {
			s.replays++
			s.log.Debug().Str("path", path).Str("source", c.Source).Stringer("commit_lsn", c.CommitLSN).Msg("replayed: removed before by the same transaction (journal)")
			continue
		}
		s.absent++
		if c.Parent == "" {
			absent = append(absent, path)
			m.Absent.WithLabelValues(s.storage).Inc()
		}
		s.log.Debug().Str("path", path).Str("source", c.Source).Str("parent", c.Parent).Msg("already absent")
	}
	for _, f := range v.failed {
		s.failures = append(s.failures, failure(s.first[f.path], f.err))
	}
	var example cdccleaner.Candidate
	if len(absent) > 0 {
		example = s.first[absent[0]]
	}
	s.p.tellAbsence(s.storage, s.p.absence.observe(s.storage, own, len(absent), example))
}

// verdicts sorts the paths of one deletion round by what became of them.
type verdicts struct {
	deleted, absent []string
	failed          []failedPath // permanent: recorded, never retried
	retry           []string     // transient: tried again after a backoff
	firstErr        error        // the first transient error, for the log
	// denied are the paths refused for permission for the first time.
	denied []string
}

type failedPath struct {
	path string
	err  error
}

// classify decides, from what storage answered (results) for the paths it
// was asked to delete, what became of each: Deleted and Absent are
// settled; a permanent error fails the path; a permission error is
// retried until it has lasted patience (deniedSince holds when each path
// was first refused; now is the time), and then fails it; anything else is
// retried. A storage that breaks its contract (no result for a path asked,
// or a result for a path it was not asked about) must not get a path
// settled: an unanswered path is retried, a stray result ignored.
func classify(storage string, asked []string, results []cdccleaner.Result, deniedSince map[string]time.Time, now time.Time, patience time.Duration) verdicts {
	var v verdicts
	want := make(map[string]bool, len(asked))
	for _, path := range asked {
		want[path] = true
	}
	answered := make(map[string]bool, len(results))
	for _, r := range results {
		if want[r.Path] {
			answered[r.Path] = true
		}
	}
	for _, path := range asked {
		if !answered[path] {
			v.retry = append(v.retry, path)
			if v.firstErr == nil {
				v.firstErr = fmt.Errorf("storage %q returned no result for %q", storage, path)
			}
		}
	}
	for _, r := range results {
		if !want[r.Path] {
			continue
		}
		switch r.Outcome {
		case cdccleaner.Deleted:
			v.deleted = append(v.deleted, r.Path)
			continue
		case cdccleaner.Absent:
			v.absent = append(v.absent, r.Path)
			continue
		}
		if cdccleaner.IsPermanent(r.Err) {
			v.failed = append(v.failed, failedPath{r.Path, r.Err})
			continue
		}
		if cdccleaner.IsPermission(r.Err) {
			since, ok := deniedSince[r.Path]
			if !ok {
				v.denied = append(v.denied, r.Path)
			} else if waited := now.Sub(since); waited >= patience {
				err := cdccleaner.Permanent(cdccleaner.ReasonPermissionDenied, fmt.Errorf("permission denied for %s: %w", waited.Round(time.Second), r.Err))
				v.failed = append(v.failed, failedPath{r.Path, err})
				continue
			}
		}
		if v.firstErr == nil {
			v.firstErr = r.Err
		}
		v.retry = append(v.retry, r.Path)
	}
	return v
}

func failure(c cdccleaner.Candidate, err error) cdccleaner.Failure {
	return cdccleaner.Failure{Candidate: c, Reason: cdccleaner.Reason(err), Detail: err.Error()}
}

// record logs and counts failures and stores them durably, retrying until
// it can (or ctx ends): a failure that is not recorded must not be settled.
func (p *Pipeline) record(ctx context.Context, storage string, failures []cdccleaner.Failure) error {
	const logCap = 20
	msg := "not deleted; recorded in cdc_cleaner.failed_deletions"
	if p.cfg.DryRun {
		msg = "dry run: would not delete; would record in cdc_cleaner.failed_deletions"
	}
	for i, f := range failures {
		if i == logCap {
			p.log.Error().Str("storage", storage).Msgf("and %d more failed deletions", len(failures)-logCap)
			break
		}
		p.log.Error().Str("storage", storage).Str("path", f.Path).Str("reason", f.Reason).Str("error", f.Detail).
			Str("source", f.Source).Stringer("commit_lsn", f.CommitLSN).Msg(msg)
	}
	if p.cfg.DryRun {
		return nil
	}
	return p.store(ctx, storage, failures)
}

// store writes failures (already logged) to cdc_cleaner.failed_deletions
// and counts them, retrying until it can or ctx ends.
func (p *Pipeline) store(ctx context.Context, storage string, failures []cdccleaner.Failure) error {
	err := p.persist(ctx, "recording failed deletions failed; holding the LSN and retrying", func() error {
		return p.cfg.Failures.RecordFailures(ctx, failures)
	})
	if err != nil {
		return err
	}
	for _, f := range failures {
		p.cfg.Metrics.Failed.WithLabelValues(storage, f.Reason).Inc()
	}
	return nil
}

// waitVisible waits until every transaction of b is visible to new
// snapshots, so that the reference check sees the database as of (at
// least) those commits.
//
// A transaction once visible stays visible: a big transaction spread over
// many batches is asked about once (p.visible remembers the last ones).
func (p *Pipeline) waitVisible(ctx context.Context, b *batch) error {
	var xids []uint32
	seen := map[uint32]bool{}
	for _, c := range b.items() {
		if !seen[c.Xid] {
			seen[c.Xid] = true
			if !p.visible.has(c.Xid) {
				xids = append(xids, c.Xid)
			}
		}
	}
	if len(xids) == 0 {
		return nil
	}
	wait := newBackoff(time.Millisecond, min(p.cfg.RetryMax, time.Second))
	since := time.Now()
	warned := false
	for {
		ok, err := p.cfg.Refs.Visible(ctx, xids)
		if err == nil && ok {
			p.visible.add(xids)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			p.log.Warn().Err(err).Str("storage", b.storage).Msg("visibility check failed; nothing deleted, retrying")
			wait.AtLeast(p.cfg.RetryMin)
		} else if !warned && time.Since(since) > 10*time.Second {
			p.log.Warn().Str("storage", b.storage).Uints32("xids", xids).
				Msg("committed transactions are still not visible after 10s (a synchronous standby not answering?); waiting before checking references")
			warned = true
		}
		if !wait.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// waitDue waits until every candidate of b is DeleteDelay past its commit.
// Batches arrive in commit order, so waiting for the newest commit of b
// holds back nothing that later batches could settle first. Restarts lose
// nothing: the LSN stays held while waiting, and the wait is computed from
// the commit time again after a replay.
func (p *Pipeline) waitDue(ctx context.Context, b *batch) error {
	if p.cfg.DeleteDelay <= 0 {
		return nil
	}
	var newest time.Time
	for _, c := range b.cands {
		if c.CommitTime.After(newest) {
			newest = c.CommitTime
		}
	}
	wait := time.Until(newest.Add(p.cfg.DeleteDelay))
	if wait <= 0 {
		return nil
	}
	p.log.Debug().Str("storage", b.storage).Int("candidates", len(b.cands)).Dur("wait", wait).Msg("waiting for delete_delay")
	if !sleep(ctx, wait) {
		return ctx.Err()
	}
	return nil
}
