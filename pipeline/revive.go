package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// A removal is journaled before the storage is asked to remove anything
// (journalIntent): what the journal says is going to happen, or has
// happened. Were it written after, a crash between the two would leave a
// file in the trash that no entry names, and a row referencing it again
// (committed before the replay, whose reference check then keeps the
// path and removes nothing) could never get it back. An intent the
// storage did not carry out as said (the file was already absent, say) is
// corrected by a second entry of the same commit LSN, which the journal
// answers with (journalCorrections). An intent whose removal failed is
// harmless: a re-reference finds the file at its path (occupied).

// trashPrefix is storage's trash prefix, "" without trash.
func (p *Pipeline) trashPrefix(storage string) string {
	return p.cfg.Trash[storage].Prefix
}

// entry is a journal entry for path of s, as of its newest candidate.
func (s *settlement) entry(path, event, location, detail string) cdccleaner.JournalEntry {
	c := s.newest(path)
	if c.Parent != "" && detail == "" {
		detail = "derived from " + c.Parent
	}
	return cdccleaner.JournalEntry{Storage: s.storage, Path: path, Event: event, Location: location,
		Source: c.Source, Xid: c.Xid, CommitLSN: c.CommitLSN, CommitTime: c.CommitTime, Detail: detail}
}

// journalIntent journals the removal of every path of paths not journaled
// yet in this batch (a path retried after a transient failure was), before
// the storage is asked. It retries until it can or ctx ends.
func (p *Pipeline) journalIntent(ctx context.Context, s *settlement, paths []string) error {
	if p.cfg.Journal == nil {
		return nil
	}
	if s.intents == nil {
		s.intents = make(map[string]string, len(paths))
	}
	entries := make([]cdccleaner.JournalEntry, 0, len(paths))
	for _, path := range paths {
		if _, done := s.intents[path]; done {
			continue
		}
		event, location := cdccleaner.RemovalIntent(path, p.trashPrefix(s.storage))
		s.intents[path] = location
		entries = append(entries, s.entry(path, event, location, ""))
	}
	if err := p.writeJournal(ctx, entries); err != nil {
		return err
	}
	return p.waitStandbys(ctx, s)
}

// waitStandbys waits, when synchronized_standby_slots names standbys,
// until they received the journal entries just written: a standby
// promoted later must know every file that went to the trash.
func (p *Pipeline) waitStandbys(ctx context.Context, s *settlement) error {
	if p.cfg.Standbys == nil || p.cfg.DryRun {
		return nil
	}
	return p.persist(ctx, "checking that the standbys received the journal failed; holding the LSN and retrying", func() error {
		return p.cfg.Standbys.WaitWritten(ctx, func(names []string, waited time.Duration) {
			s.log.Warn().Strs("standby_slots", names).Dur("waited", waited).
				Msg("the standbys of synchronized_standby_slots have not received the journal's newest entries: no file moves until they have (a standby down? remove it from synchronized_standby_slots, as PostgreSQL's own walsenders wait for it too)")
		})
	})
}

// journalCorrections journals what one deletion round did differently from
// its intent: a file already absent (and found in the trash or not), or
// deleted although it was meant for the trash.
func (p *Pipeline) journalCorrections(ctx context.Context, s *settlement, results []cdccleaner.Result) error {
	if p.cfg.Journal == nil {
		return nil
	}
	var entries []cdccleaner.JournalEntry
	for _, r := range results {
		location, intended := s.intents[r.Path]
		if !intended {
			continue
		}
		if event, loc, detail, ok := cdccleaner.RemovalCorrection(r, location); ok {
			entries = append(entries, s.entry(r.Path, event, loc, detail))
		}
	}
	return p.writeJournal(ctx, entries)
}

// writeJournal writes entries, retrying until it can or ctx ends: what is
// not journaled must not be acknowledged.
func (p *Pipeline) writeJournal(ctx context.Context, entries []cdccleaner.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return p.persist(ctx, "writing the journal failed; holding the LSN and retrying", func() error {
		return p.cfg.Journal.Write(ctx, entries)
	})
}

// revive compares the new references of b with the journal (promise 7): a
// path whose newest entry, up to the commit of its newest reference in b,
// is a removal was removed before a committed row referenced it again. It
// is restored from the trash; when it cannot be, the dangling reference is
// recorded in cdc_cleaner.failed_deletions. Either way the journal says
// what happened, so that a replay after a crash finds it handled.
//
// The order of batches (order.go) makes every earlier removal of these
// paths journaled before revive looks, and makes later removals wait until
// b's transactions are visible to their reference checks.
func (p *Pipeline) revive(ctx context.Context, b *batch) error {
	if err := p.waitVisible(ctx, b); err != nil {
		return err
	}
	newest := make(map[string]cdccleaner.Candidate, len(b.refs))
	var paths, prefixes []string
	for _, c := range b.refs {
		n, seen := newest[c.Path]
		if !seen {
			if c.IsPrefix() {
				prefixes = append(prefixes, c.Path)
			} else {
				paths = append(paths, c.Path)
			}
		}
		if !seen || c.CommitLSN >= n.CommitLSN {
			newest[c.Path] = c
		}
	}
	upTo := make([]cdccleaner.LSN, len(paths))
	for i, path := range paths {
		upTo[i] = newest[path].CommitLSN
	}
	latest, err := p.latest(ctx, b.storage, paths, upTo)
	if err != nil {
		return err
	}
	var removedPaths []string
	for _, path := range paths {
		if e, ok := latest[path]; ok && cdccleaner.IsRemoval(e.Event) {
			removedPaths = append(removedPaths, path)
		}
	}
	if len(removedPaths) == 0 && len(prefixes) == 0 {
		return nil // never removed, or already brought back or reported
	}
	// Only what the database references now comes back. A transaction
	// may reference a path and remove it again (in itself, or in a later
	// transaction, whose removal may even have been journaled before this
	// reference is handled): then nothing needs the file, and it stays
	// in the trash. A derived file or prefix comes back with the path it
	// derives from.
	ask := append([]string(nil), removedPaths...)
	for _, path := range append(removedPaths, prefixes...) {
		if parent := newest[path].Parent; parent != "" {
			ask = append(ask, parent)
		}
	}
	current, err := p.referencedNow(ctx, b.storage, ask)
	if err != nil {
		return err
	}
	live := func(ref cdccleaner.Candidate) bool {
		if ref.Parent != "" {
			return current[ref.Parent]
		}
		return current[ref.Path]
	}
	var entries []cdccleaner.JournalEntry
	var dangling []cdccleaner.Failure
	for _, path := range removedPaths {
		removed := latest[path]
		ref := newest[path]
		if !live(ref) {
			p.log.Debug().Str("storage", b.storage).Str("path", path).Str("source", ref.Source).Stringer("commit_lsn", ref.CommitLSN).
				Msg("referenced again, and no longer referenced now: left as removed")
			continue
		}
		a, err := p.bringBack(ctx, b.storage, path, removed)
		if err != nil {
			return err
		}
		if ref.Parent != "" {
			// A derived file is no reference: one that cannot come back
			// (often one never made) is nobody's dangling reference.
			if e, ok := p.derivedAnswer(b.storage, ref, a); ok {
				entries = append(entries, e)
			}
			continue
		}
		entries = append(entries, cdccleaner.JournalEntry{Storage: b.storage, Path: path, Event: a.event,
			Source: ref.Source, Xid: ref.Xid, CommitLSN: ref.CommitLSN, CommitTime: ref.CommitTime, Detail: a.detail})
		table, column := p.splitSource(ref.Source)
		log := p.log.With().Str("storage", b.storage).Str("path", path).Str("source", ref.Source).
			Uint32("xid", ref.Xid).Stringer("commit_lsn", ref.CommitLSN).
			Str("removed", removed.Event).Stringer("removed_lsn", removed.CommitLSN).Time("removed_at", removed.At).Logger()
		switch a.event {
		case cdccleaner.JournalRestored:
			p.cfg.Metrics.Restored.WithLabelValues(b.storage).Inc()
			log.Info().Msgf("restored %s: a committed row of %s references it again (column %s)", path, table, column)
		case cdccleaner.JournalOccupied:
			log.Info().Msgf("referenced again by %s (column %s), and a file exists at %s: left alone (%s)", table, column, path, a.detail)
		case cdccleaner.JournalDangling:
			p.cfg.Metrics.Dangling.WithLabelValues(b.storage).Inc()
			log.Error().Str("table", table).Str("column", column).Str("reason", a.reason).Str("error", a.detail).
				Msgf("dangling reference: %s references %s, which the cleaner removed and cannot restore; recorded in cdc_cleaner.failed_deletions", ref.Source, path)
			dangling = append(dangling, cdccleaner.Failure{Candidate: ref, Reason: a.reason, Detail: a.detail})
		}
	}
	for _, prefix := range prefixes {
		ref := newest[prefix]
		if !live(ref) {
			continue
		}
		more, err := p.revivePrefix(ctx, b.storage, ref)
		if err != nil {
			return err
		}
		entries = append(entries, more...)
	}
	if err := p.writeJournal(ctx, entries); err != nil {
		return err
	}
	return p.store(ctx, b.storage, dangling)
}

// referencedNow asks the live database which of paths are referenced,
// retrying until it answers or ctx ends.
func (p *Pipeline) referencedNow(ctx context.Context, storage string, paths []string) (refs map[string]bool, err error) {
	err = p.persist(ctx, "reference check of re-referenced paths failed; nothing restored, retrying", func() (err error) {
		refs, err = p.cfg.Refs.Referenced(ctx, storage, paths)
		return err
	})
	return refs, err
}

// latest asks the journal, retrying until it answers or ctx ends.
func (p *Pipeline) latest(ctx context.Context, storage string, paths []string, upTo []cdccleaner.LSN) (latest map[string]cdccleaner.JournalEntry, err error) {
	err = p.persist(ctx, "reading the journal failed; holding the LSN and retrying", func() (err error) {
		latest, err = p.cfg.Journal.Latest(ctx, storage, paths, upTo)
		return err
	})
	return latest, err
}

// answer is what became of one re-referenced path: a journal event, and
// for a dangling one the reason it is recorded under.
type answer struct {
	event, reason, detail string
}

// bringBack restores path, removed as the journal entry says, or tells why
// it cannot. Transient storage errors are retried with backoff; only the
// end of ctx returns an error.
func (p *Pipeline) bringBack(ctx context.Context, storage, path string, removed cdccleaner.JournalEntry) (answer, error) {
	st := p.cfg.Storages[storage]
	retry := newBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	var deniedSince time.Time
	for {
		a, err := p.tryBringBack(ctx, st, storage, path, removed)
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return answer{}, ctx.Err()
		}
		if cdccleaner.IsPermission(err) {
			if deniedSince.IsZero() {
				deniedSince = time.Now()
			} else if waited := time.Since(deniedSince); waited >= p.cfg.PermissionPatience {
				err = cdccleaner.Permanent(cdccleaner.ReasonPermissionDenied, fmt.Errorf("permission denied for %s: %w", waited.Round(time.Second), err))
			}
		}
		if cdccleaner.IsPermanent(err) {
			return answer{cdccleaner.JournalDangling, cdccleaner.DanglingError,
				fmt.Sprintf("%s at %s; restoring it failed: %v", removed.Event, removed.At.Format(time.RFC3339), err)}, nil
		}
		p.log.Warn().Err(err).Str("storage", storage).Str("path", path).Dur("retry_in", retry.Next()).
			Msg("restoring a re-referenced file failed transiently; holding the LSN and retrying")
		if !retry.Wait(ctx) {
			return answer{}, ctx.Err()
		}
	}
}

// tryBringBack is one attempt of bringBack.
func (p *Pipeline) tryBringBack(ctx context.Context, st cdccleaner.Storage, storage, path string, removed cdccleaner.JournalEntry) (answer, error) {
	when := removed.At.UTC().Format(time.RFC3339)
	if removed.Event == cdccleaner.JournalTrashed {
		r, ok := st.(cdccleaner.Restorer)
		if !ok {
			return answer{cdccleaner.JournalDangling, cdccleaner.DanglingError,
				fmt.Sprintf("trashed at %s to %s, and storage %q cannot restore", when, removed.Location, storage)}, nil
		}
		outcome, err := r.Restore(ctx, path, removed.Location)
		if err != nil {
			return answer{}, err
		}
		switch outcome {
		case cdccleaner.Restored:
			return answer{event: cdccleaner.JournalRestored, detail: "from " + removed.Location}, nil
		case cdccleaner.Occupied:
			return answer{event: cdccleaner.JournalOccupied,
				detail: fmt.Sprintf("a file exists at the path (a new upload, or one restored or never moved before a restart); the copy trashed at %s, if any, stays in %s until purged", when, removed.Location)}, nil
		}
		// Not in the trash. Another batch's re-reference of the same path
		// may have restored it just now (re-references of one path are
		// not ordered among themselves): then the file is there.
		if s, ok := st.(cdccleaner.Statter); ok {
			if _, err := s.Stat(path); err == nil {
				return answer{event: cdccleaner.JournalOccupied,
					detail: fmt.Sprintf("trashed at %s; no longer in %s, and a file exists at the path (restored by another re-reference, or a new upload)", when, removed.Location)}, nil
			}
		}
		if t, ok := p.cfg.Trash[storage]; ok && time.Since(removed.At) >= t.Retention {
			return answer{cdccleaner.JournalDangling, cdccleaner.DanglingPurged,
				fmt.Sprintf("trashed at %s, and purged from the trash after the undo window (trash_retention %s)", when, t.Retention)}, nil
		}
		return answer{cdccleaner.JournalDangling, cdccleaner.DanglingMissing,
			fmt.Sprintf("trashed at %s to %s, which no longer holds it (removed by someone else?)", when, removed.Location)}, nil
	}
	// Deleted for good, or absent when the cleaner came: nothing to
	// restore, unless a file is there again (a new upload).
	if s, ok := st.(cdccleaner.Statter); ok {
		_, err := s.Stat(path)
		switch {
		case err == nil:
			return answer{event: cdccleaner.JournalOccupied, detail: fmt.Sprintf("%s at %s; a file exists at the path again (a new upload)", removed.Event, when)}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return answer{}, err
		}
	}
	if removed.Event == cdccleaner.JournalDeleted {
		return answer{cdccleaner.JournalDangling, cdccleaner.DanglingDeleted,
			fmt.Sprintf("deleted for good at %s: trash is off for storage %q (README: Undo window)", when, storage)}, nil
	}
	return answer{cdccleaner.JournalDangling, cdccleaner.DanglingAbsent,
		fmt.Sprintf("already absent when the cleaner came to remove it at %s", when)}, nil
}

// splitSource splits a candidate's source, "schema.table.column" for a
// configured column, into "schema.table" and "column"; any other source
// ("message") is all table.
func (p *Pipeline) splitSource(source string) (table, column string) {
	for _, c := range p.cfg.Columns {
		if c.Source() == source {
			return c.Schema + "." + c.Table, c.Name
		}
	}
	return source, ""
}
