package pipeline

import (
	"context"
	"fmt"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// settle decides every candidate of b: kept because referenced, deleted,
// absent, or recorded as failed. Transient trouble (database or storage) is
// retried with backoff without limit; only the end of ctx stops it early,
// with an error, and then nothing of b may be acknowledged.
func (p *Pipeline) settle(ctx context.Context, b *batch) error {
	storage := p.cfg.Storages[b.storage]
	log := p.log.With().Str("storage", b.storage).Logger()

	// One decision per distinct path; the first candidate stands for the
	// others in logs and failure records.
	first := map[string]cdccleaner.Candidate{}
	var todo []string
	var failures []cdccleaner.Failure
	var kept int
	keep := p.cfg.Keep[b.storage]
	for _, c := range b.cands {
		if _, seen := first[c.Path]; seen {
			continue
		}
		first[c.Path] = c
		if cdccleaner.MatchPattern(keep, c.Path) {
			kept++
			p.cfg.Metrics.KeptReferenced.WithLabelValues(b.storage).Inc()
			log.Debug().Str("path", c.Path).Str("source", c.Source).Msg("kept: matches a keep pattern")
			continue
		}
		if err := cdccleaner.ValidatePath(c.Path); err != nil {
			failures = append(failures, p.failure(c, err))
			continue
		}
		todo = append(todo, c.Path)
	}

	if len(todo) > 0 {
		if err := p.waitDue(ctx, b); err != nil {
			return err
		}
		if err := p.waitVisible(ctx, b); err != nil {
			return err
		}
	}

	var deleted, absent, wouldDelete int
	backoff := p.cfg.RetryMin
	deniedSince := map[string]time.Time{} // first permission failure of a path
	warned := false
	for len(todo) > 0 {
		refs, err := p.cfg.Refs.Referenced(ctx, b.storage, todo)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn().Err(err).Int("paths", len(todo)).Dur("retry_in", backoff).Msg("reference check failed; nothing deleted, retrying")
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, p.cfg.RetryMax)
			continue
		}
		var unreferenced []string
		for _, path := range todo {
			if refs[path] {
				kept++
				p.cfg.Metrics.KeptReferenced.WithLabelValues(b.storage).Inc()
				log.Debug().Str("path", path).Str("source", first[path].Source).Msg("kept: still referenced")
				continue
			}
			unreferenced = append(unreferenced, path)
		}
		if p.cfg.DryRun {
			for _, path := range unreferenced {
				wouldDelete++
				c := first[path]
				log.Info().Str("path", path).Str("source", c.Source).Stringer("commit_lsn", c.CommitLSN).Msg("dry run: would delete")
			}
			break
		}
		var retry []string
		var firstErr error
		var results []cdccleaner.Result
		if len(unreferenced) > 0 {
			results = storage.Delete(ctx, unreferenced)
		}
		// A storage that breaks its contract (a result missing, or for a
		// path it was not given) must not get a path settled: retry those.
		answered := make(map[string]bool, len(results))
		for _, r := range results {
			if _, ok := first[r.Path]; ok {
				answered[r.Path] = true
			}
		}
		for _, path := range unreferenced {
			if !answered[path] {
				retry = append(retry, path)
				if firstErr == nil {
					firstErr = fmt.Errorf("storage %q returned no result for %q", b.storage, path)
				}
			}
		}
		for _, r := range results {
			c, ok := first[r.Path]
			if !ok {
				continue
			}
			switch r.Outcome {
			case cdccleaner.Deleted:
				deleted++
				p.cfg.Metrics.Deleted.WithLabelValues(b.storage).Inc()
				p.cfg.Metrics.DeleteLatency.Observe(time.Since(c.CommitTime).Seconds())
				log.Debug().Str("path", r.Path).Str("source", c.Source).Stringer("commit_lsn", c.CommitLSN).Msg("deleted")
			case cdccleaner.Absent:
				absent++
				p.cfg.Metrics.Absent.WithLabelValues(b.storage).Inc()
				log.Debug().Str("path", r.Path).Str("source", c.Source).Msg("already absent")
			default:
				if cdccleaner.IsPermanent(r.Err) {
					failures = append(failures, p.failure(c, r.Err))
					continue
				}
				if cdccleaner.IsPermission(r.Err) {
					since, ok := deniedSince[r.Path]
					if !ok {
						deniedSince[r.Path] = time.Now()
					} else if time.Since(since) >= p.cfg.PermissionPatience {
						err := cdccleaner.Permanent(cdccleaner.ReasonPermissionDenied,
							fmt.Errorf("permission denied for %s: %w", time.Since(since).Round(time.Second), r.Err))
						failures = append(failures, p.failure(c, err))
						continue
					}
				}
				if firstErr == nil {
					firstErr = r.Err
				}
				retry = append(retry, r.Path)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		todo = retry
		if len(todo) > 0 {
			if !warned || backoff >= p.cfg.RetryMax {
				log.Warn().Err(firstErr).Int("paths", len(todo)).Dur("retry_in", backoff).
					Msg("storage failed transiently; holding the LSN and retrying")
				warned = true
			}
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, p.cfg.RetryMax)
		}
	}

	if len(failures) > 0 {
		if err := p.record(ctx, b.storage, failures); err != nil {
			return err
		}
	}
	p.count(deleted, absent, kept, len(failures), wouldDelete)
	return nil
}

func (p *Pipeline) failure(c cdccleaner.Candidate, err error) cdccleaner.Failure {
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
	backoff := p.cfg.RetryMin
	for {
		err := p.cfg.Failures.RecordFailures(ctx, failures)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn().Err(err).Dur("retry_in", backoff).Msg("recording failed deletions failed; holding the LSN and retrying")
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, p.cfg.RetryMax)
	}
	for _, f := range failures {
		p.cfg.Metrics.Failed.WithLabelValues(storage, f.Reason).Inc()
	}
	return nil
}

// waitVisible waits until every transaction of b is visible to new
// snapshots, so that the reference check sees the database as of (at
// least) those commits.
func (p *Pipeline) waitVisible(ctx context.Context, b *batch) error {
	var xids []uint32
	seen := map[uint32]bool{}
	for _, c := range b.cands {
		if !seen[c.Xid] {
			seen[c.Xid] = true
			xids = append(xids, c.Xid)
		}
	}
	wait := time.Millisecond
	since := time.Now()
	warned := false
	for {
		ok, err := p.cfg.Refs.Visible(ctx, xids)
		if err == nil && ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			p.log.Warn().Err(err).Str("storage", b.storage).Msg("visibility check failed; nothing deleted, retrying")
			wait = max(wait, p.cfg.RetryMin)
		} else if !warned && time.Since(since) > 10*time.Second {
			p.log.Warn().Str("storage", b.storage).Uints32("xids", xids).
				Msg("committed transactions are still not visible after 10s (a synchronous standby not answering?); waiting before checking references")
			warned = true
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(wait*2, p.cfg.RetryMax, time.Second)
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
