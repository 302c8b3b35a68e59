package scan

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// DefaultBatchSize is how many paths one reference query and one Delete
// call carry.
const DefaultBatchSize = 1000

// Outcomes of an orphan in a scan with Delete, as Orphan.Outcome says them.
const (
	OutcomeDeleted    = "deleted"    // removed (or moved to the trash)
	OutcomeAbsent     = "absent"     // already gone when its turn came
	OutcomeFailed     = "failed"     // the storage refused; Orphan.Err says why
	OutcomeReferenced = "referenced" // referenced again by the time it was re-checked: kept
	OutcomeModified   = "modified"   // rewritten since it was listed, or now younger than MinAge: kept
)

// Config is one scan of one storage.
type Config struct {
	// Storage is the storage's name, as Refs knows it.
	Storage string
	// Files lists the storage.
	Files cdccleaner.Lister
	// Store deletes orphans (with Delete). A cdccleaner.Statter is asked about
	// each orphan of a batch again (StatConcurrency at a time) before the
	// batch's references are checked again and it is deleted.
	Store cdccleaner.Storage
	// Refs answers which paths the database still references.
	Refs cdccleaner.ReferenceChecker
	// Journal, when set, records what a scan with Delete removed, as run
	// does (promise 7), so that a file a committed row references again
	// comes back from the trash. Position returns the server's current WAL
	// position; it is read before each batch's reference re-check and
	// stands for the removal's commit LSN: a row committed after it is
	// compared with the removal, one committed before it was seen by the
	// re-check.
	Journal  cdccleaner.Journal
	Position func(ctx context.Context) (cdccleaner.LSN, error)
	// TrashPrefix is the storage's trash_prefix when trash is on, "" when
	// it is off: where the journal says a removed file goes.
	TrashPrefix string
	// Keep are the storage's keep patterns, Exclude those of the scan
	// (cdccleaner.MatchPattern globs). Matching files are never candidates.
	Keep, Exclude []string
	// MinAge: files modified less than MinAge ago are never candidates.
	MinAge time.Duration
	// Delete deletes the orphans; without it the scan only reports them.
	Delete bool
	// BatchSize is DefaultBatchSize when zero.
	BatchSize int
	// Now is time.Now when nil.
	Now func() time.Time
	// Report, when set, is called for each orphan: without Delete as soon
	// as it is found, with Delete once its deletion is settled (Outcome
	// set). An error stops the scan.
	Report func(Orphan) error
	// Invalid, when set, is called for each listed file whose path
	// cdccleaner.ValidatePath rejects; such a file is never deleted.
	Invalid func(f cdccleaner.File, err error)
	// Progress, when set, is called about every ProgressEvery (default 2s)
	// while the scan runs, with the phase ("listing" or "deleting").
	Progress      func(phase string, s Stats)
	ProgressEvery time.Duration
	// SpoolDir holds the temporary file of orphans between listing and
	// deletion; os.TempDir() when empty.
	SpoolDir string
	// AfterList, when set, runs between the listing and the deletion.
	AfterList func(ctx context.Context) error
	// Spellings, when set, reads the values of the storage's columns that
	// are not canonical paths ("./a.jpg", "/media/a.jpg", a URL): a file
	// that one of them could name (cdccleaner.CanonicalNames) counts as
	// referenced, in the listing and at the re-check alike. They are read
	// before the listing, again before the deletion, and again before a
	// batch is re-checked whenever the last read is older than
	// SpellingsMaxAge (DefaultSpellingsMaxAge when zero) and than four
	// times as long as that read took.
	Spellings       SpellingReader
	SpellingsMaxAge time.Duration

	// The guards of a deletion (promise 8: a wrong configuration deletes
	// nothing). With Delete and without Force, a scan whose listing looks
	// like a wrong mapping deletes nothing and returns a *RefusedError once
	// the listing is done (see Refusal). MaxOrphanRatio is the share of
	// the listed files checked against the database that may look orphaned
	// (Stats.OrphanRatio; DefaultMaxOrphanRatio when zero). EmptyTables names the configured tables of the storage that
	// hold no rows: then the storage may hold fewer than EmptyTableMinFiles
	// files (DefaultEmptyTableMinFiles when zero).
	MaxOrphanRatio     float64
	EmptyTables        []string
	EmptyTableMinFiles int64
	Force              bool
}

// Defaults of the guards of a deletion.
const (
	DefaultMaxOrphanRatio     = 0.5
	DefaultEmptyTableMinFiles = 100
)

// RefusedError is a scan with Delete that deleted nothing because its
// listing looks like a wrong configuration.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string {
	return "refusing to delete: " + e.Reason + "; nothing was deleted. If the configuration is right, run again with --force"
}

// OrphanRatio is the share of orphans among the listed files that were
// checked against the database (referenced or orphaned): young, excluded,
// kept and invalid files are left out, so that many of them cannot dilute
// a listing where nearly every file that could be deleted looks orphaned.
func (s Stats) OrphanRatio() float64 {
	checked := s.Referenced + s.Orphaned
	if checked == 0 {
		return 0
	}
	return float64(s.Orphaned) / float64(checked)
}

// Refusal says why the guards of cfg refuse to delete after a listing that
// counted st, or "" when they let it through. Force is not consulted: a
// dry run reports what a deletion would meet.
func Refusal(cfg Config, st Stats) string {
	maxRatio, minFiles := cfg.MaxOrphanRatio, cfg.EmptyTableMinFiles
	if maxRatio <= 0 {
		maxRatio = DefaultMaxOrphanRatio
	}
	if minFiles <= 0 {
		minFiles = DefaultEmptyTableMinFiles
	}
	switch {
	case len(cfg.EmptyTables) > 0 && st.Scanned >= minFiles:
		return fmt.Sprintf("configured table %s holds no rows while storage %q holds %d files: every file it would reference looks orphaned (a wrong table, or a copy of the database without its data?)",
			strings.Join(cfg.EmptyTables, ", "), cfg.Storage, st.Scanned)
	case st.OrphanRatio() > maxRatio:
		return fmt.Sprintf("%d of the %d listed files checked against the database (%.0f%%) look orphaned, more than --max-orphan-ratio %g allows: the mapping from column values to files may be wrong (root, prefix or layout; cdc-cleaner check samples it)",
			st.Orphaned, st.Referenced+st.Orphaned, 100*st.OrphanRatio(), maxRatio)
	}
	return ""
}

// Orphan is a file no column referenced when it was checked.
type Orphan struct {
	cdccleaner.File
	Outcome string // with Delete: one of the Outcome constants
	Err     error  // with OutcomeFailed
}

// Stats counts what a scan saw and did.
type Stats struct {
	Scanned     int64         `json:"files_scanned"`
	Bytes       int64         `json:"bytes_scanned"`
	Referenced  int64         `json:"referenced"`
	Orphaned    int64         `json:"orphaned"`
	Reclaimable int64         `json:"bytes_reclaimable"`
	Young       int64         `json:"young"`
	Excluded    int64         `json:"excluded"`
	Kept        int64         `json:"kept"`
	Invalid     int64         `json:"invalid"`
	Deleted     int64         `json:"deleted"`
	Absent      int64         `json:"absent"`
	Failed      int64         `json:"failed"`
	Rescued     int64         `json:"referenced_before_delete"` // orphans referenced again at the re-check
	Modified    int64         `json:"modified_before_delete"`   // orphans rewritten since the listing
	Spelled     int64         `json:"referenced_by_spelling"`   // of Referenced, those only a non-canonical value could name
	Spellings   int64         `json:"noncanonical_values"`      // non-canonical values (distinct per column), as last read
	Elapsed     time.Duration `json:"-"`
}

type scanner struct {
	cfg       Config
	stats     Stats
	start     time.Time
	lastProg  time.Time
	cutoff    time.Time // files modified after it are young
	spool     *spool
	spellings spellings
}

// Run scans cfg.Storage. It returns the counts so far with any error: a
// listing error, a reference check that failed, ctx ending. Failed
// deletions are counted, not returned as an error.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 2 * time.Second
	}
	if cfg.SpellingsMaxAge <= 0 {
		cfg.SpellingsMaxAge = DefaultSpellingsMaxAge
	}
	s := &scanner{cfg: cfg, start: cfg.Now()}
	s.lastProg = s.start
	s.cutoff = s.start.Add(-cfg.MinAge)
	err := s.run(ctx)
	s.stats.Elapsed = cfg.Now().Sub(s.start)
	return s.stats, err
}

func (s *scanner) run(ctx context.Context) error {
	if err := s.loadSpellings(ctx); err != nil {
		return err
	}
	if s.cfg.Delete {
		sp, err := newSpool(s.cfg.SpoolDir)
		if err != nil {
			return err
		}
		defer sp.close()
		s.spool = sp
	}
	batch := make([]cdccleaner.File, 0, s.cfg.BatchSize)
	err := s.cfg.Files.List(ctx, func(f cdccleaner.File) error {
		s.stats.Scanned++
		s.stats.Bytes += f.Size
		if err := validName(f.Path); err != nil {
			s.stats.Invalid++
			if s.cfg.Invalid != nil {
				s.cfg.Invalid(f, err)
			}
			return nil
		}
		switch {
		case cdccleaner.MatchPattern(s.cfg.Exclude, f.Path):
			s.stats.Excluded++
			return nil
		case cdccleaner.MatchPattern(s.cfg.Keep, f.Path):
			s.stats.Kept++
			return nil
		case f.ModTime.After(s.cutoff):
			s.stats.Young++
			return nil
		}
		batch = append(batch, f)
		if len(batch) < s.cfg.BatchSize {
			return nil
		}
		err := s.check(ctx, batch)
		batch = batch[:0]
		s.progress("listing")
		return err
	})
	if err == nil && len(batch) > 0 {
		err = s.check(ctx, batch)
	}
	if err != nil {
		return err
	}
	if !s.cfg.Delete {
		return nil
	}
	if reason := Refusal(s.cfg, s.stats); reason != "" && !s.cfg.Force {
		return &RefusedError{Reason: reason}
	}
	if s.cfg.AfterList != nil {
		if err := s.cfg.AfterList(ctx); err != nil {
			return err
		}
	}
	if err := s.loadSpellings(ctx); err != nil {
		return err
	}
	return s.deleteSpooled(ctx)
}

// check asks the database about batch and reports or spools the orphans.
func (s *scanner) check(ctx context.Context, batch []cdccleaner.File) error {
	refs, spelled, err := s.referenced(ctx, batch)
	if err != nil {
		return err
	}
	s.stats.Spelled += spelled
	for _, f := range batch {
		if refs[f.Path] {
			s.stats.Referenced++
			continue
		}
		s.stats.Orphaned++
		s.stats.Reclaimable += f.Size
		if s.cfg.Delete {
			if err := s.spool.write(f); err != nil {
				return err
			}
			continue
		}
		if err := s.report(Orphan{File: f}); err != nil {
			return err
		}
	}
	return nil
}

// referenced returns which files of batch the database references or a
// non-canonical value could name, and how many only the latter.
func (s *scanner) referenced(ctx context.Context, batch []cdccleaner.File) (map[string]bool, int64, error) {
	paths := make([]string, len(batch))
	for i, f := range batch {
		paths[i] = f.Path
	}
	refs, err := s.cfg.Refs.Referenced(ctx, s.cfg.Storage, paths)
	if err != nil {
		return nil, 0, fmt.Errorf("check references of %d files: %w", len(paths), err)
	}
	if refs == nil {
		refs = map[string]bool{}
	}
	return refs, s.addSpelled(refs, paths), nil
}

// deleteSpooled reads the orphans back in batches, checks each batch again
// and deletes what is still unreferenced and unchanged.
func (s *scanner) deleteSpooled(ctx context.Context) error {
	if err := s.spool.rewind(); err != nil {
		return err
	}
	batch := make([]cdccleaner.File, 0, s.cfg.BatchSize)
	for {
		f, err := s.spool.read()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if err == nil {
			batch = append(batch, f)
		}
		if len(batch) == s.cfg.BatchSize || errors.Is(err, io.EOF) && len(batch) > 0 {
			if derr := s.deleteBatch(ctx, batch); derr != nil {
				return derr
			}
			batch = batch[:0]
			s.progress("deleting")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// deleteBatch looks at every orphan of batch again, checks the batch's
// references again and deletes at once what is still unreferenced and
// unchanged. The order is the point: the reference re-check is the last
// thing before the deletion, so a row committed while the orphans are
// looked at (one HeadObject each on S3) keeps its file; and the lookups
// run StatConcurrency at a time, so that window does not grow with the
// batch.
func (s *scanner) deleteBatch(ctx context.Context, batch []cdccleaner.File) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.refreshSpellings(ctx); err != nil {
		return err
	}
	var now []statResult
	if statter, ok := s.cfg.Store.(cdccleaner.Statter); ok {
		var err error
		if now, err = statAll(ctx, statter, batch); err != nil {
			return err
		}
	}
	var at cdccleaner.LSN
	if s.cfg.Journal != nil {
		var err error
		if at, err = s.cfg.Position(ctx); err != nil {
			return fmt.Errorf("read the WAL position for the journal: %w", err)
		}
	}
	refs, _, err := s.referenced(ctx, batch)
	if err != nil {
		return err
	}
	young := s.cfg.Now().Add(-s.cfg.MinAge)
	var doomed []cdccleaner.File
	var kept []Orphan
	for i, f := range batch {
		o := Orphan{File: f}
		switch {
		case refs[f.Path]:
			s.stats.Rescued++
			o.Outcome = OutcomeReferenced
		case now == nil:
			doomed = append(doomed, f)
			continue
		case errors.Is(now[i].err, fs.ErrNotExist):
			s.stats.Absent++
			o.Outcome = OutcomeAbsent
		case now[i].err != nil:
			s.stats.Failed++
			o.Outcome, o.Err = OutcomeFailed, now[i].err
		case changed(f, now[i].file) || now[i].file.ModTime.After(young):
			s.stats.Modified++
			o.Outcome = OutcomeModified
		default:
			doomed = append(doomed, f)
			continue
		}
		kept = append(kept, o)
	}
	if len(doomed) > 0 {
		paths := make([]string, len(doomed))
		for i, f := range doomed {
			paths[i] = f.Path
		}
		// Journaled before the storage moves anything, as run does: a
		// crash between the two leaves no removed file the journal does
		// not name.
		intents, err := s.journalIntents(ctx, paths, at)
		if err != nil {
			return err
		}
		results := s.cfg.Store.Delete(ctx, paths)
		back, err := s.journalAfter(ctx, results, intents, at)
		if err != nil {
			return err
		}
		for i, r := range results {
			o := Orphan{File: doomed[i]}
			if back[r.Path] {
				s.stats.Rescued++
				o.Outcome = OutcomeReferenced
				if err := s.report(o); err != nil {
					return err
				}
				continue
			}
			switch r.Outcome {
			case cdccleaner.Deleted:
				s.stats.Deleted++
				o.Outcome = OutcomeDeleted
			case cdccleaner.Absent:
				s.stats.Absent++
				o.Outcome = OutcomeAbsent
			default:
				s.stats.Failed++
				o.Outcome, o.Err = OutcomeFailed, r.Err
			}
			if err := s.report(o); err != nil {
				return err
			}
		}
	}
	// Reported after the deletion, so that nothing (a slow output) comes
	// between the re-check and the deletion.
	for _, o := range kept {
		if err := s.report(o); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// entry is a journal entry of a removal or restore by this scan.
func (s *scanner) entry(path, event, location, detail string, at cdccleaner.LSN) cdccleaner.JournalEntry {
	return cdccleaner.JournalEntry{Storage: s.cfg.Storage, Path: path, Event: event, Location: location,
		Source: SourceScan, CommitLSN: at, CommitTime: s.cfg.Now(), Detail: detail}
}

// journalIntents journals the removal of paths before the storage is
// asked, and returns where each is journaled to go ("" deleted).
func (s *scanner) journalIntents(ctx context.Context, paths []string, at cdccleaner.LSN) (map[string]string, error) {
	if s.cfg.Journal == nil {
		return nil, nil
	}
	intents := make(map[string]string, len(paths))
	entries := make([]cdccleaner.JournalEntry, len(paths))
	for i, p := range paths {
		event, location := cdccleaner.RemovalIntent(p, s.cfg.TrashPrefix)
		intents[p] = location
		entries[i] = s.entry(p, event, location, "", at)
	}
	if err := s.cfg.Journal.Write(ctx, entries); err != nil {
		return nil, fmt.Errorf("journal %d orphans before removing them (nothing was removed): %w", len(entries), err)
	}
	return intents, nil
}

// journalAfter corrects the intents the storage did not carry out as
// journaled, then looks at the references of what it moved to the trash
// once more: a row that came to reference one while its batch was being
// moved (after the re-check, and perhaps handled by a running cleaner
// before the file moved, which then found it in place) gets it back here.
// It returns the paths put back.
func (s *scanner) journalAfter(ctx context.Context, results []cdccleaner.Result, intents map[string]string, at cdccleaner.LSN) (map[string]bool, error) {
	if s.cfg.Journal == nil {
		return nil, nil
	}
	var entries []cdccleaner.JournalEntry
	var moved []string
	trash := map[string]string{}
	for _, r := range results {
		if event, loc, detail, ok := cdccleaner.RemovalCorrection(r, intents[r.Path]); ok {
			entries = append(entries, s.entry(r.Path, event, loc, detail, at))
		}
		if r.Trash != "" && (r.Outcome == cdccleaner.Deleted || r.Outcome == cdccleaner.Absent) {
			moved = append(moved, r.Path)
			trash[r.Path] = r.Trash
		}
	}
	back := map[string]bool{}
	restorer, ok := s.cfg.Store.(cdccleaner.Restorer)
	if len(moved) > 0 && ok {
		refs, err := s.cfg.Refs.Referenced(ctx, s.cfg.Storage, moved)
		if err != nil {
			return nil, fmt.Errorf("check again the references of %d orphans moved to the trash (they stay there, journaled): %w", len(moved), err)
		}
		for _, p := range moved {
			if !refs[p] {
				continue
			}
			outcome, err := restorer.Restore(ctx, p, trash[p])
			switch {
			case err != nil:
				return nil, fmt.Errorf("restore %s, referenced again while it was moved to the trash (it is in %s, journaled): %w", p, trash[p], err)
			case outcome == cdccleaner.Restored:
				entries = append(entries, s.entry(p, cdccleaner.JournalRestored, "", "referenced again while scan moved it", at))
				back[p] = true
			case outcome == cdccleaner.Occupied:
				entries = append(entries, s.entry(p, cdccleaner.JournalOccupied, "", "referenced again while scan moved it; a file is at the path", at))
				back[p] = true
			}
		}
	}
	if len(entries) == 0 {
		return back, nil
	}
	if err := s.cfg.Journal.Write(ctx, entries); err != nil {
		return nil, fmt.Errorf("journal %d entries after removing orphans: %w", len(entries), err)
	}
	return back, nil
}

// SourceScan is the source of the journal entries a scan writes.
const SourceScan = "scan"

// StatConcurrency is how many orphans a scan with Delete looks at at once
// before their batch is deleted.
const StatConcurrency = 16

// statResult is what a Statter said about one file.
type statResult struct {
	file cdccleaner.File
	err  error
}

// statAll looks at every file of batch, StatConcurrency at a time, and
// returns the results in the order of batch. Once ctx ends it starts no
// more, waits for those in flight and returns ctx's error.
func statAll(ctx context.Context, statter cdccleaner.Statter, batch []cdccleaner.File) ([]statResult, error) {
	out := make([]statResult, len(batch))
	var g errgroup.Group
	g.SetLimit(StatConcurrency)
	for i, f := range batch {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			out[i].file, out[i].err = statter.Stat(f.Path)
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *scanner) report(o Orphan) error {
	if s.cfg.Report == nil {
		return nil
	}
	return s.cfg.Report(o)
}

func (s *scanner) progress(phase string) {
	if s.cfg.Progress == nil {
		return
	}
	now := s.cfg.Now()
	if now.Sub(s.lastProg) < s.cfg.ProgressEvery {
		return
	}
	s.lastProg = now
	s.stats.Elapsed = now.Sub(s.start)
	s.cfg.Progress(phase, s.stats)
}

// spool keeps orphans on disk between the listing and the deletion, as
// length-prefixed records (a path may hold any byte, which JSON would not
// carry unchanged).
type spool struct {
	f *os.File
	w *bufio.Writer
	r *bufio.Reader
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "cdc-cleaner-scan-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create the orphan spool file: %w", err)
	}
	os.Remove(f.Name()) // lives until closed; nothing left behind on a crash
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<16)}, nil
}

func (s *spool) write(f cdccleaner.File) error {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(f.Path)))
	b = append(b, f.Path...)
	b = binary.AppendVarint(b, f.Size)
	b = binary.AppendVarint(b, f.ModTime.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(f.ETag)))
	b = append(b, f.ETag...)
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write the orphan spool file: %w", err)
	}
	return nil
}

func (s *spool) rewind() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write the orphan spool file: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind the orphan spool file: %w", err)
	}
	s.r = bufio.NewReaderSize(s.f, 1<<16)
	return nil
}

// read returns the next file, or io.EOF after the last.
func (s *spool) read() (cdccleaner.File, error) {
	n, err := binary.ReadUvarint(s.r)
	if errors.Is(err, io.EOF) {
		return cdccleaner.File{}, io.EOF
	}
	var f cdccleaner.File
	var mtime int64
	if err == nil {
		p := make([]byte, n)
		if _, err = io.ReadFull(s.r, p); err == nil {
			f.Path = string(p)
			if f.Size, err = binary.ReadVarint(s.r); err == nil {
				mtime, err = binary.ReadVarint(s.r)
			}
			var m uint64
			if err == nil {
				m, err = binary.ReadUvarint(s.r)
			}
			if err == nil {
				etag := make([]byte, m)
				if _, err = io.ReadFull(s.r, etag); err == nil {
					f.ETag = string(etag)
				}
			}
		}
	}
	if err != nil {
		return cdccleaner.File{}, fmt.Errorf("read the orphan spool file: %w", noEOF(err))
	}
	f.ModTime = time.Unix(0, mtime)
	return f, nil
}

// noEOF turns an end of file inside a record into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (s *spool) close() { s.f.Close() }

// validName is cdccleaner.ValidatePath, plus valid UTF-8: the database cannot
// take another encoding in a text[] parameter, and such a name could never
// be referenced by a text column anyway.
func validName(p string) error {
	if !utf8.ValidString(p) {
		return fmt.Errorf("validate path %q: not valid UTF-8", p)
	}
	return cdccleaner.ValidatePath(p)
}

// changed reports whether a file looked at again differs from the listing:
// by ETag where the storage has one (S3: a rewrite of the key changes it),
// otherwise by modification time.
func changed(listed, now cdccleaner.File) bool {
	if listed.ETag != "" && now.ETag != "" {
		return listed.ETag != now.ETag
	}
	return !now.ModTime.Equal(listed.ModTime)
}
