package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/discover"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

func cmdDiscover(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("discover", "[--config FILE]",
		fmt.Sprintf(`Samples the text-like (text, varchar, character, citext, domains over them),
text array and json/jsonb columns of the database's tables (a partitioned
table through its root; not the system schemas nor cdc_cleaner) against
every configured storage, and prints the columns whose values are files
there: as comments, saying which are already watched or protected, then the
others as protect: entries ready to paste into the configuration (with the
json_path where a json column holds its paths). Columns the role may not
read are counted and noted: the search is then incomplete, so run it as a
role that can read the application's tables.

A column references a storage when at least %.0f%% of its sampled paths, and at
least %d, exist there. Values that are URLs or absolute paths are looked up by
the names they could mean, and said to be such. A few values of every column
are looked up first; only a column that names a file is sampled further (%d
values), and the search makes at most %d lookups, so it takes seconds on a
large database. Progress goes to stderr.

Exit codes: 0 ok (whether or not columns were found), 1 the database or a
storage cannot be reached, 2 bad configuration.`, 100*discover.MinShare, discover.MinPresent, discover.SampleValues, discover.MaxLookups), stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := discoverColumns(ctx, cfg, stderr)
	if err != nil {
		return failure(err)
	}
	if err := res.WriteYAML(stdout); err != nil {
		return failure(fmt.Errorf("write the result: %w", err))
	}
	return nil
}

// discoverColumns searches the database of cfg for columns referencing its
// storages (package discover), reporting progress on stderr once it takes
// more than a second.
func discoverColumns(ctx context.Context, cfg *config.Config, stderr io.Writer) (*discover.Result, error) {
	storages, closeStorages, err := openStorages(ctx, cfg, zerolog.Nop()) // lists, never deletes
	if err != nil {
		return nil, err
	}
	defer closeStorages()
	return searchStorages(ctx, cfg, storages, stderr)
}

// searchStorages searches the database of cfg for columns referencing
// storages, some or all of cfg's, opened: scan searches its own only.
func searchStorages(ctx context.Context, cfg *config.Config, storages map[string]cdccleaner.Storage, stderr io.Writer) (*discover.Result, error) {
	statters := map[string]cdccleaner.Statter{}
	for name, st := range storages {
		s, ok := st.(cdccleaner.Statter)
		if !ok {
			return nil, fmt.Errorf("storage %q (%s) cannot look up a file", name, cfg.Storages[name].Type)
		}
		statters[name] = s
	}
	pool, err := openPool(ctx, cfg, discover.Workers, "cdc-cleaner discover", nil)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = pool.Ping(pingCtx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", config.RedactURL(cfg.Postgres.URL), err)
	}
	var role string
	if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		return nil, fmt.Errorf("read the role's name: %w", err)
	}
	p := &progress{w: stderr, start: time.Now()}
	return discover.Search(ctx, discover.Config{
		Source:     discover.NewDB(pool),
		Role:       role,
		Storages:   statters,
		Configured: cfg.Columns(),
		Progress:   p.report,
	})
}

// progress writes a search's progress, once a second after the first.
type progress struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
	last  time.Time
}

func (p *progress) report(s discover.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.last) < time.Second && s.Done < s.Tables {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "discover: %d/%d tables, %d columns found\n", s.Done, s.Tables, s.Found)
}

// checkColumns is check's search for columns that reference a storage but
// that no watch or protect entry names (promise 8): each is a problem. A
// search that cannot run, or that could not read everything (columns the
// role may not read, lookups that failed, its bound), is a warning that
// says so: check cannot vouch for what it did not see.
func checkColumns(ctx context.Context, cfg *config.Config, report *provision.Report, stdout, stderr io.Writer) {
	add := func(s provision.Severity, code provision.Code, msg string) {
		label := map[provision.Severity]string{provision.OK: "ok", provision.Warning: "warning", provision.Problem: "FAIL"}[s]
		fmt.Fprintf(stdout, "  %-8s %s\n", label, msg)
		if s != provision.OK {
			report.Findings = append(report.Findings, provision.Finding{Severity: s, Code: code, Message: msg})
		}
	}
	res, err := discoverColumns(ctx, cfg, stderr)
	if err != nil {
		add(provision.Warning, provision.CodeUnchecked, fmt.Sprintf("the columns of the database were not searched for references to the storages: %v", err))
		return
	}
	unconfigured := res.Unconfigured()
	for _, f := range unconfigured {
		add(provision.Problem, provision.CodeGeneral, unconfiguredLine(f))
	}
	for _, f := range res.Misfiled() {
		add(provision.Warning, provision.CodeGeneral, misfiledLine(f))
	}
	for _, n := range res.Notes {
		add(provision.Warning, provision.CodeUnchecked, "the search for columns referencing the storages is incomplete: "+n)
	}
	switch {
	case len(unconfigured) > 0:
		fmt.Fprintf(stdout, "  hint     cdc-cleaner discover prints the YAML to paste\n")
	case res.Complete():
		add(provision.OK, provision.CodeGeneral, fmt.Sprintf("no column that the configuration leaves out references a storage (%s sampled)", res.Sampled()))
	}
}

// unconfiguredLine says that f's column references a storage but is
// neither watched nor protected, and what to add.
func unconfiguredLine(f discover.Finding) string {
	msg := fmt.Sprintf("%s references storage %q (%d of %d sampled paths exist) but is neither watched nor protected: add it under protect: %s",
		discover.Name(f.Column), f.Column.Storage, f.Present, f.Paths, discover.EntryOf(f).Flow())
	if note := f.SpellingNote(); note != "" {
		msg += "; " + note
	}
	return msg
}

// misfiledLine says that f's column references a storage other than the
// one its entry names.
func misfiledLine(f discover.Finding) string {
	return fmt.Sprintf("%s references storage %q too (%d of %d sampled paths exist) but is %s",
		discover.Name(f.Column), f.Column.Storage, f.Present, f.Paths, f.Status())
}
