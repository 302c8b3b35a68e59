package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/journal"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// maxInvalidShown caps the warnings about invalid paths.
const maxInvalidShown = 10

func cmdScan(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("scan", "[--config FILE] [--storage NAME] [--delete] [--min-age 24h] [--exclude GLOB ...] [--output FILE] [--json] [--max-orphan-ratio 0.5] [--force]",
		`Lists every file of a storage and reports those that no watched or protect
column mapped to it references: files left behind before the cleaner ran,
while it was stopped without a slot, or by a TRUNCATE. Dry run unless
--delete. References are checked against the live database in batches of
1000 paths; the listing is streamed, so memory stays bounded.

Never candidates: files modified less than --min-age ago (an upload whose row
is not committed yet), files matching --exclude or the storage's keep
patterns, paths that are not valid relative paths, the trash directory
(trash_prefix) and, on local storage, symlinks and special files.

With --delete the orphans are deleted through the storage, as run deletes
(trash honoured), once the whole listing has succeeded: each batch is checked
against the database again right before deletion, so a file referenced since
it was listed is kept; a local file modified since is kept too. This makes a
scan safe beside a running "cdc-cleaner run".

Output (stdout, or --output FILE): one line per orphan,
"path<TAB>size<TAB>mtime" (RFC 3339, UTC), and with --delete a fourth field,
the outcome: deleted, absent, failed, referenced or modified. A path holding
a control character or invalid UTF-8 is printed Go-quoted ("..."). With
--json: one JSON object per line, {"type":"orphan",...} for each orphan and a
last {"type":"summary",...}. Progress goes to stderr every 2s when stderr is
a terminal; a one-line summary always ends on stderr.

A column value that is not a canonical path ("./a.jpg", "a//b.jpg",
"/media/a.jpg", a URL of the file) keeps every file it could name: the part
after any scheme and host, with and without a query, percent-decoded or
not, cleaned, and every ending of it after a "/" ("a.jpg", "media/a.jpg").
Such values are read again before the deletion and, while it runs, every
30s (or every four times as long as reading them takes, when that is
longer); a column with more than 100000 distinct ones makes scan refuse
(exit 1).

Guards (a wrong configuration deletes nothing): before listing, some values
of each of the storage's columns are sampled and looked up in the storage;
when most of them are not there, the mapping from values to files is wrong
(root, prefix or layout) and --delete refuses before listing. It refuses
too when the database has a column that references the storage's files
but that no watch or protect entry maps to it (the search of "cdc-cleaner
discover", for this storage), or when that search cannot complete (columns
the role may not read, tables it could not read, failed lookups). After the
listing and before deleting anything, --delete also refuses when more than
--max-orphan-ratio (default 0.5) of the listed files look orphaned, or when
a configured table of the storage is empty while the storage holds 100
files or more. Each refusal exits 1 and says why; --force overrides them. A
dry run prints the same figures and what --delete would do.

Exit codes: 0 done (orphans found or not); 1 runtime failure (the storage or
the database cannot be read, a deletion failed, a guard refused);
2 bad flags or configuration, unknown storage, or a storage no column
references.`, stderr)
	storageName := fs.String("storage", "", "storage `NAME` to scan (may be left out when the configuration has one storage)")
	doDelete := fs.Bool("delete", false, "delete the orphans (default: only list them)")
	minAge := fs.Duration("min-age", 24*time.Hour, "never touch files modified less than `DURATION` ago")
	var excludes stringList
	fs.Var(&excludes, "exclude", "skip paths matching `GLOB` (path.Match; a trailing /** matches a whole directory); repeatable")
	outPath := fs.String("output", "", "write the orphan list to `FILE` instead of stdout")
	asJSON := fs.Bool("json", false, "write JSON lines (one object per orphan, then a summary object)")
	maxOrphanRatio := fs.Float64("max-orphan-ratio", scan.DefaultMaxOrphanRatio, "with --delete, refuse when more than this share of the listed files look orphaned")
	force := fs.Bool("force", false, "with --delete, delete even when the sampling or the listing looks like a wrong configuration")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *minAge < 0 {
		return configErr(fmt.Errorf("--min-age %s: must not be negative", *minAge))
	}
	if !(*maxOrphanRatio > 0 && *maxOrphanRatio <= 1) {
		return configErr(fmt.Errorf("--max-orphan-ratio %g: give a share of the listed files above 0 and at most 1, e.g. 0.5", *maxOrphanRatio))
	}
	for _, pat := range excludes {
		if err := cdccleaner.ValidPattern(pat); err != nil {
			return configErr(fmt.Errorf("--exclude: %w", err))
		}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	name := *storageName
	if name == "" {
		if len(cfg.Storages) != 1 {
			return configErr(fmt.Errorf("the configuration has %d storages (%s): choose one with --storage", len(cfg.Storages), strings.Join(sortedNames(cfg.Storages), ", ")))
		}
		for n := range cfg.Storages {
			name = n
		}
	}
	scfg, ok := cfg.Storages[name]
	if !ok {
		return configErr(fmt.Errorf("--storage %q: no such storage in %s (configured: %s)", name, *cfgPath, strings.Join(sortedNames(cfg.Storages), ", ")))
	}
	if *doDelete && cfg.DryRun {
		return configErr(errors.New("--delete with dry_run set in the configuration: unset dry_run (or CDC_CLEANER_DRY_RUN) to delete"))
	}
	log := newLogger(cfg.Log, stderr).With().Str("component", "scan").Str("storage", name).Logger()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The columns that reference the storage, as they exist in the
	// database; a configured one that is missing would make every file it
	// references look orphaned.
	report, err := inspect(ctx, cfg, false)
	if err != nil {
		return failure(err)
	}
	cols, err := scan.Columns(name, cfg.Columns(), report.Columns)
	if err != nil {
		return configErr(err)
	}

	storages, closeStorages, err := openStorages(ctx, cfg, log)
	if err != nil {
		return configErr(err)
	}
	defer closeStorages()
	st := storages[name]
	lister, ok := st.(cdccleaner.Lister)
	if !ok {
		return configErr(fmt.Errorf("storage %q (%s) cannot be listed", name, scfg.Type))
	}

	pool, err := openPool(ctx, cfg, 2, "cdc-cleaner scan", nil)
	if err != nil {
		return configErr(err)
	}
	defer pool.Close()
	noteUnnamed(ctx, pool, name, log)

	// Promise 8: a mapping that matches no file, or a configured table that
	// is empty, would make every file look orphaned.
	samples, err := sampleColumns(ctx, pool, st, cols)
	if err != nil {
		return failure(fmt.Errorf("sample the columns of storage %q: %w", name, err))
	}
	var wrong []string
	for _, r := range samples {
		line := sampleLine(r, scfg)
		fmt.Fprintf(stderr, "scan %s: sample %s\n", name, line)
		if r.Wrong() {
			wrong = append(wrong, line)
		}
	}
	if len(wrong) > 0 {
		reason := "the sampled values of " + strings.Join(wrong, "; and of ")
		switch {
		case *doDelete && !*force:
			return failure(&scan.RefusedError{Reason: reason})
		case !*doDelete:
			fmt.Fprintf(stderr, "scan %s: --delete would refuse: %s\n", name, reason)
		}
	}
	// Promise 8: a column that references the storage but that no watch
	// or protect entry maps to it is invisible to the reference check, so
	// its files would look orphaned; a search that could not see every
	// column cannot say there is none.
	if reason := unconfiguredRefusal(ctx, cfg, name, st, stderr); reason != "" {
		switch {
		case *doDelete && !*force:
			return failure(&scan.RefusedError{Reason: reason})
		case *doDelete:
			fmt.Fprintf(stderr, "scan %s: --force: deleting although %s\n", name, reason)
		default:
			fmt.Fprintf(stderr, "scan %s: --delete would refuse: %s (--force overrides)\n", name, reason)
		}
	}
	empty, err := emptyTables(ctx, pool, cols)
	if err != nil {
		return failure(err)
	}
	refs, err := refcheck.New(pool, cols, refcheck.Logger(log))
	if err != nil {
		return configErr(err)
	}
	spellings, err := refcheck.NewSpellings(pool, cols)
	if err != nil {
		return configErr(err)
	}
	var jnl cdccleaner.Journal
	if *doDelete {
		// What scan removes is journaled as run's removals are, so that a
		// file a row references again comes back (promise 7). Scan needs
		// no setup (no slot, no publication): without the journal it says
		// what that costs and goes on.
		ready, err := journal.CheckReadiness(ctx, pool)
		why := ""
		switch {
		case err != nil:
			return failure(err)
		case !ready.Exists:
			why = "table cdc_cleaner.journal does not exist (cdc-cleaner setup creates it)"
		case !ready.CanInsert:
			why = "this role may not INSERT into cdc_cleaner.journal"
		default:
			jnl = journal.New(pool)
		}
		if why != "" {
			where := "deleted at once (trash is off)"
			if scfg.Trash {
				where = "moved to " + scfg.TrashPrefix + " (trash) as usual"
			}
			log.Warn().Str("storage", name).Msgf("%s: what this scan removes is %s but not journaled, so a running cleaner will not bring back a file a row references again; it would report nothing either", why, where)
		}
	}

	var out io.Writer = stdout
	if *outPath != "" {
		f, err := os.Create(*outPath)
		if err != nil {
			return configErr(fmt.Errorf("--output: %w", err))
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriterSize(out, 1<<16)
	var writeErr error
	write := func(v any) {
		if writeErr != nil {
			return
		}
		if *asJSON {
			b, err := json.Marshal(v)
			if err == nil {
				b = append(b, '\n')
				_, err = w.Write(b)
			}
			writeErr = err
			return
		}
		_, writeErr = fmt.Fprintln(w, v)
	}

	terminal := isTerminal(stderr)
	invalid := 0
	stats, err := scan.Run(ctx, scan.Config{
		Storage:  name,
		Files:    lister,
		Store:    st,
		Refs:     refcheck.WithDerived(refs, cols),
		Journal:  jnl,
		Position: walPosition(pool),
		TrashPrefix: func() string {
			if scfg.Trash {
				return scfg.TrashPrefix
			}
			return ""
		}(),
		Spellings: spellings,
		Keep:      scfg.Keep,
		Exclude:   excludes,
		MinAge:    *minAge,
		Delete:    *doDelete,

		MaxOrphanRatio: *maxOrphanRatio,
		EmptyTables:    empty,
		Force:          *force,
		Report: func(o scan.Orphan) error {
			if *asJSON {
				write(orphanJSON{Type: "orphan", Path: o.Path, Size: o.Size, ModTime: o.ModTime.UTC(), Outcome: o.Outcome, Error: errText(o.Err)})
			} else {
				line := fmt.Sprintf("%s\t%d\t%s", printablePath(o.Path), o.Size, o.ModTime.UTC().Format(time.RFC3339))
				if o.Outcome != "" {
					line += "\t" + o.Outcome
				}
				write(line)
			}
			if o.Err != nil {
				log.Warn().Err(o.Err).Str("path", o.Path).Msg("delete orphan")
			}
			return writeErr
		},
		Invalid: func(f cdccleaner.File, err error) {
			invalid++
			if invalid <= maxInvalidShown {
				log.Warn().Err(err).Str("path", f.Path).Msg("not a valid path: never deleted")
			}
		},
		Progress: func(phase string, s scan.Stats) {
			if terminal {
				fmt.Fprintf(stderr, "scan %s: %s: %d files scanned (%.0f/s), %d orphans so far, %d deleted\n",
					name, phase, s.Scanned, rate(s.Scanned, s.Elapsed), s.Orphaned, s.Deleted)
			}
		},
	})
	if invalid > maxInvalidShown {
		log.Warn().Msgf("and %d more invalid paths", invalid-maxInvalidShown)
	}
	if *asJSON {
		write(summaryJSON{Type: "summary", Storage: name, Delete: *doDelete, MinAge: minAge.String(), Stats: stats,
			ElapsedSeconds: stats.Elapsed.Seconds(), FilesPerSecond: rate(stats.Scanned, stats.Elapsed), Complete: err == nil,
			OrphanRatio: stats.OrphanRatio(), Refusal: scan.Refusal(scan.Config{Storage: name, MaxOrphanRatio: *maxOrphanRatio, EmptyTables: empty}, stats)})
	}
	if ferr := w.Flush(); writeErr == nil {
		writeErr = ferr
	}
	fmt.Fprintln(stderr, summaryLine(name, *doDelete, stats))
	if reason := scan.Refusal(scan.Config{Storage: name, MaxOrphanRatio: *maxOrphanRatio, EmptyTables: empty}, stats); reason != "" && !*doDelete && err == nil {
		fmt.Fprintf(stderr, "scan %s: --delete would refuse: %s (--force overrides)\n", name, reason)
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return failure(errors.New("interrupted: the scan is incomplete"))
	case err != nil:
		return failure(err)
	case writeErr != nil:
		return failure(fmt.Errorf("write the orphan list: %w", writeErr))
	case stats.Failed > 0:
		return failure(fmt.Errorf("%d deletions failed", stats.Failed))
	}
	return nil
}

type orphanJSON struct {
	Type    string    `json:"type"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Outcome string    `json:"outcome,omitempty"`
	Error   string    `json:"error,omitempty"`
}

type summaryJSON struct {
	Type    string `json:"type"`
	Storage string `json:"storage"`
	Delete  bool   `json:"delete"`
	MinAge  string `json:"min_age"`
	scan.Stats
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	FilesPerSecond float64 `json:"files_per_second"`
	// Complete is false when the scan stopped early (an error, a signal).
	Complete bool `json:"complete"`
	// OrphanRatio is the share of the listed files that looked orphaned;
	// Refusal says why --delete refuses (or refused), if it does.
	OrphanRatio float64 `json:"orphan_ratio"`
	Refusal     string  `json:"refusal,omitempty"`
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// summaryLine is the one line a scan always ends with on stderr.
func summaryLine(name string, del bool, s scan.Stats) string {
	line := fmt.Sprintf("scan %s: %d files scanned in %s (%.0f/s): %d referenced, %d orphaned (%s reclaimable); skipped %d young, %d excluded, %d kept, %d invalid",
		name, s.Scanned, s.Elapsed.Round(time.Millisecond), rate(s.Scanned, s.Elapsed), s.Referenced, s.Orphaned,
		provision.HumanBytes(s.Reclaimable), s.Young, s.Excluded, s.Kept, s.Invalid)
	if s.Spellings > 0 {
		line += fmt.Sprintf("; %d values are not canonical paths (cdc-cleaner check shows them): %d files kept only because one of them could name it", s.Spellings, s.Spelled)
	}
	if del {
		line += fmt.Sprintf("; deleted %d, absent %d, failed %d, kept because referenced again %d, modified %d",
			s.Deleted, s.Absent, s.Failed, s.Rescued, s.Modified)
	} else {
		line += " (dry run: nothing deleted; --delete deletes)"
	}
	return line
}

// printablePath quotes a path that would break a tab-separated line or a
// terminal.
func printablePath(p string) string {
	if !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0 || strings.HasPrefix(p, `"`) {
		return strconv.Quote(p)
	}
	return p
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// noteUnnamed says what run recorded for storage that it could not name:
// changes whose old values did not arrive, and TRUNCATEs. Their files are
// among the orphans a scan finds. It says nothing when it cannot read the
// record.
func noteUnnamed(ctx context.Context, pool *pgxpool.Pool, storage string, log zerolog.Logger) {
	n, newest, err := ledger.Unnamed(ctx, pool, storage)
	if err != nil || n == 0 {
		return
	}
	log.Warn().Int64("records", n).Time("newest", newest).
		Msgf("cdc_cleaner.failed_deletions records changes to storage %q whose files could not be named (rows with reason old_values_missing or truncated: %d, the newest from %s): the files they orphaned are among the orphans this scan finds", storage, n, newest.UTC().Format(time.RFC3339))
}

// walPosition reads the server's current WAL position.
func walPosition(pool *pgxpool.Pool) func(ctx context.Context) (cdccleaner.LSN, error) {
	return func(ctx context.Context) (cdccleaner.LSN, error) {
		var at string
		if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&at); err != nil {
			return 0, err
		}
		return cdccleaner.ParseLSN(at)
	}
}
