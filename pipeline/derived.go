package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Derived files and prefixes (an entry's `derived`) are candidates whose
// Parent is the path they derive from. They go with their parent: kept
// while it (or they themselves) are referenced, removed and journaled as
// any path otherwise. A derived prefix is removed file by file: listed,
// each file checked and removed (trashed) and journaled, then the
// directories left empty pruned.

// addParent notes that path derives from parent.
func (s *settlement) addParent(path, parent string) {
	if s.parents == nil {
		s.parents = map[string][]string{}
	}
	for _, p := range s.parents[path] {
		if p == parent {
			return
		}
	}
	s.parents[path] = append(s.parents[path], parent)
}

// withParents returns paths and the parents of the derived ones, each
// once: the reference check must see both.
func (s *settlement) withParents(paths []string) []string {
	if len(s.parents) == 0 {
		return paths
	}
	out := append([]string(nil), paths...)
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		seen[p] = true
	}
	for _, p := range paths {
		for _, parent := range s.parents[p] {
			if !seen[parent] {
				seen[parent] = true
				out = append(out, parent)
			}
		}
	}
	return out
}

// referencedParent returns a parent of path that refs says is referenced,
// or "".
func (s *settlement) referencedParent(path string, refs map[string]bool) string {
	for _, parent := range s.parents[path] {
		if refs[parent] {
			return parent
		}
	}
	return ""
}

// splitPrefixes separates derived prefixes from files.
func (s *settlement) splitPrefixes(paths []string) (files, prefixes []string) {
	for _, p := range paths {
		if s.first[p].IsPrefix() {
			prefixes = append(prefixes, p)
		} else {
			files = append(files, p)
		}
	}
	return files, prefixes
}

// removePrefix removes every file below prefix (a derived prefix of s's
// storage) that nothing references, in chunks of BatchSize as the listing
// goes: each chunk is checked, journaled, removed and corrected as a batch
// of paths is. It returns the prefix's result: Deleted when it removed a
// file, Absent when there was none, Failed when a file failed
// transiently or the listing failed (the prefix is tried again; what was
// removed is then absent). A file that fails for good is recorded in
// s.failures. Only the end of ctx returns an error.
//
// A file refused for permission is tried again until it has been refused
// for PermissionPatience (deniedSince holds when each path was first
// refused), and then fails for good, as a path of a batch does.
func (p *Pipeline) removePrefix(ctx context.Context, s *settlement, st cdccleaner.Storage, prefix string, deniedSince map[string]time.Time) (cdccleaner.Result, error) {
	result := cdccleaner.Result{Path: prefix, Outcome: cdccleaner.Absent}
	lister, ok := st.(cdccleaner.PrefixLister)
	if !ok {
		result.Outcome, result.Err = cdccleaner.Failed, cdccleaner.Permanent(cdccleaner.ReasonRejectedPath,
			fmt.Errorf("derived prefix %q: storage %q cannot list a prefix", prefix, s.storage))
		return result, nil
	}
	c := s.newest(prefix)
	var transient error
	var chunk []string
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		defer func() { chunk = chunk[:0] }()
		refs, err := p.referencedNow(ctx, s.storage, chunk)
		if err != nil {
			return err
		}
		var files []string
		for _, f := range chunk {
			if refs[f] {
				s.log.Debug().Str("path", f).Str("prefix", prefix).Msg("kept: below a derived prefix, and referenced")
				continue
			}
			files = append(files, f)
		}
		if len(files) == 0 {
			return nil
		}
		if err := p.journalFiles(ctx, s, c, files, nil); err != nil {
			return err
		}
		results := st.Delete(ctx, files)
		for _, r := range results {
			switch {
			case r.Outcome == cdccleaner.Deleted:
				result.Outcome = cdccleaner.Deleted
				p.cfg.Metrics.Deleted.WithLabelValues(s.storage).Inc()
				s.log.Debug().Str("path", r.Path).Str("prefix", prefix).Msg("deleted: below a derived prefix")
			case r.Outcome == cdccleaner.Absent:
			case cdccleaner.IsPermanent(r.Err):
				fc := c
				fc.Path = r.Path
				s.failures = append(s.failures, failure(fc, r.Err))
			case cdccleaner.IsPermission(r.Err):
				since, ok := deniedSince[r.Path]
				if !ok {
					deniedSince[r.Path] = time.Now()
				} else if waited := time.Since(since); waited >= p.cfg.PermissionPatience {
					fc := c
					fc.Path = r.Path
					s.failures = append(s.failures, failure(fc, cdccleaner.Permanent(cdccleaner.ReasonPermissionDenied,
						fmt.Errorf("permission denied for %s: %w", waited.Round(time.Second), r.Err))))
					continue
				}
				if transient == nil {
					transient = r.Err
				}
			default:
				if transient == nil {
					transient = r.Err
				}
			}
		}
		return p.journalFiles(ctx, s, c, nil, results)
	}
	keep := p.cfg.Keep[s.storage]
	err := lister.ListPrefix(ctx, prefix, func(f cdccleaner.File) error {
		if err := cdccleaner.ValidatePath(f.Path); err != nil || !strings.HasPrefix(f.Path, prefix) {
			return nil // never listed by a conforming storage; never touched
		}
		if cdccleaner.MatchPattern(keep, f.Path) {
			s.log.Debug().Str("path", f.Path).Str("prefix", prefix).Msg("kept: below a derived prefix, and matches a keep pattern")
			return nil
		}
		chunk = append(chunk, f.Path)
		if len(chunk) < p.cfg.BatchSize {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if ctx.Err() != nil {
		return result, ctx.Err()
	}
	switch {
	case err != nil && cdccleaner.IsPermanent(err):
		result.Outcome, result.Err = cdccleaner.Failed, fmt.Errorf("list derived prefix %q: %w", prefix, err)
		return result, nil
	case err != nil:
		transient = fmt.Errorf("list derived prefix %q: %w", prefix, err)
	}
	if transient != nil {
		result.Outcome, result.Err = cdccleaner.Failed, transient
		return result, nil
	}
	if pruner, ok := st.(cdccleaner.DirPruner); ok {
		if err := pruner.PruneDirs(ctx, prefix); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn().Err(err).Str("prefix", prefix).Msg("the files below a derived prefix are removed, but its empty directories could not be")
		}
	}
	return result, nil
}

// journalFiles journals, for files below a derived prefix of candidate c,
// the removal of files (before the storage is asked), or what results did
// differently from it (after).
func (p *Pipeline) journalFiles(ctx context.Context, s *settlement, c cdccleaner.Candidate, files []string, results []cdccleaner.Result) error {
	if p.cfg.Journal == nil {
		return nil
	}
	detail := belowPrefix(c.Path) + "of " + c.Parent
	entry := func(path, event, location, extra string) cdccleaner.JournalEntry {
		d := detail
		if extra != "" {
			d += "; " + extra
		}
		return cdccleaner.JournalEntry{Storage: s.storage, Path: path, Event: event, Location: location,
			Source: c.Source, Xid: c.Xid, CommitLSN: c.CommitLSN, CommitTime: c.CommitTime, Detail: d}
	}
	var entries []cdccleaner.JournalEntry
	trash := p.trashPrefix(s.storage)
	for _, f := range files {
		event, location := cdccleaner.RemovalIntent(f, trash)
		entries = append(entries, entry(f, event, location, ""))
	}
	for _, r := range results {
		_, location := cdccleaner.RemovalIntent(r.Path, trash)
		if event, loc, d, ok := cdccleaner.RemovalCorrection(r, location); ok {
			entries = append(entries, entry(r.Path, event, loc, d))
		}
	}
	if err := p.writeJournal(ctx, entries); err != nil {
		return err
	}
	if len(files) > 0 {
		// Intents: the standbys must have them before the files move.
		return p.waitStandbys(ctx, s)
	}
	return nil
}

// derivedAnswer is the journal entry and log line of a derived file that a
// re-referenced path brought back, or tried to: restored and occupied are
// journaled; a file that cannot come back is only logged, at debug.
func (p *Pipeline) derivedAnswer(storage string, ref cdccleaner.Candidate, a answer) (cdccleaner.JournalEntry, bool) {
	log := p.log.With().Str("storage", storage).Str("path", ref.Path).Str("parent", ref.Parent).Str("source", ref.Source).Logger()
	switch a.event {
	case cdccleaner.JournalRestored:
		p.cfg.Metrics.Restored.WithLabelValues(storage).Inc()
		log.Info().Msgf("restored %s with %s, from which it derives", ref.Path, ref.Parent)
	case cdccleaner.JournalOccupied:
		log.Debug().Msg("derived file referenced again with its parent; a file exists at its path: left alone")
	default:
		log.Debug().Str("why", a.detail).Msg("derived file not restored with its parent")
		return cdccleaner.JournalEntry{}, false
	}
	return cdccleaner.JournalEntry{Storage: storage, Path: ref.Path, Event: a.event, Source: ref.Source, Xid: ref.Xid,
		CommitLSN: ref.CommitLSN, CommitTime: ref.CommitTime, Detail: a.detail + "; derived from " + ref.Parent}, true
}

// revivePrefix brings back the files of derived prefix ref.Path that the
// trash holds and the journal says were removed (up to ref's commit),
// BatchSize at a time as the trash is listed, and returns the journal
// entries of what it restored. Without trash, or a storage that cannot
// list, there is nothing to bring back.
func (p *Pipeline) revivePrefix(ctx context.Context, storage string, ref cdccleaner.Candidate) ([]cdccleaner.JournalEntry, error) {
	trash := p.trashPrefix(storage)
	lister, ok := p.cfg.Storages[storage].(cdccleaner.PrefixLister)
	if trash == "" || !ok {
		return nil, nil
	}
	var entries []cdccleaner.JournalEntry
	var chunk []string
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		defer func() { chunk = chunk[:0] }()
		upTo := make([]cdccleaner.LSN, len(chunk))
		for i := range upTo {
			upTo[i] = ref.CommitLSN
		}
		latest, err := p.latest(ctx, storage, chunk, upTo)
		if err != nil {
			return err
		}
		for _, path := range chunk {
			removed, ok := latest[path]
			// Only what went with the prefix comes back with it: a file
			// below it removed for reasons of its own (a row of another
			// entry, scan) stays removed.
			if !ok || !cdccleaner.IsRemoval(removed.Event) || !strings.HasPrefix(removed.Detail, belowPrefix(ref.Path)) {
				continue
			}
			a, err := p.bringBack(ctx, storage, path, removed)
			if err != nil {
				return err
			}
			fr := ref
			fr.Path = path
			if e, ok := p.derivedAnswer(storage, fr, a); ok {
				e.Detail += " (below derived prefix " + ref.Path + ")"
				entries = append(entries, e)
			}
		}
		return nil
	}
	// Listing and restoring take turns per chunk: a restored file leaves
	// the trash, which the listing may or may not still show; bringBack
	// then finds it at its path.
	var listErr error
	retry := newBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	for {
		listErr = lister.ListPrefix(ctx, trash+ref.Path, func(f cdccleaner.File) error {
			path, ok := strings.CutPrefix(f.Path, trash)
			if !ok || cdccleaner.ValidatePath(path) != nil {
				return nil
			}
			chunk = append(chunk, path)
			if len(chunk) < p.cfg.BatchSize {
				return nil
			}
			return flush()
		})
		if listErr == nil {
			listErr = flush()
		}
		if listErr == nil || ctx.Err() != nil {
			break
		}
		if cdccleaner.IsPermanent(listErr) {
			// Derived files are no references: what cannot be listed is
			// not restored, and holds nothing.
			p.log.Warn().Err(listErr).Str("storage", storage).Str("prefix", ref.Path).Msg("the trash cannot be listed below a derived prefix; its files are not restored")
			return entries, nil
		}
		p.log.Warn().Err(listErr).Str("storage", storage).Str("prefix", ref.Path).Dur("retry_in", retry.Next()).Msg("listing a derived prefix in the trash failed; retrying")
		chunk = chunk[:0]
		if !retry.Wait(ctx) {
			break
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return entries, listErr
}

// belowPrefix starts the journal detail of a file removed with derived
// prefix prefix.
func belowPrefix(prefix string) string { return "below derived prefix " + prefix + " " }
