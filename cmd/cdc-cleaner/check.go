package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check", "[--config FILE]",
		`Validates the configuration and the database (wal_level, privileges, watched
tables and columns, replica identity, publication, slot, indexes on watched
columns, values of watched and protect columns that are not canonical paths)
and the storages, and prints a readable report. Each watched and protect
column's values are sampled and looked up in its storage: when most of them
name no file there, the mapping from values to files is wrong (root, prefix
or layout) and that is a problem. The other text, array and JSON columns of
the database's tables are sampled too (as cdc-cleaner discover does): one
whose values are files of a storage but that is neither watched nor
protected is a problem, since the reference check would not see it. A
search that could not read everything (columns the role may not read,
tables it could not read, failed lookups) is a warning: it is incomplete.

Exit codes: 0 ok (warnings allowed), 1 problems found, 2 bad configuration.`, stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "config %s: ok\n", *cfgPath)
	fmt.Fprintf(stdout, "database %s\n", config.RedactURL(cfg.Postgres.URL))
	ctx := context.Background()
	conn, err := connect(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stdout, "  FAIL     %v\n", err)
		return failure(fmt.Errorf("cannot reach the database"))
	}
	defer conn.Close(ctx)
	report, err := provision.Inspect(ctx, conn, cfg)
	if err != nil {
		return failure(err)
	}
	provision.InspectSpellings(ctx, conn, cfg, report, provision.SpellingTimeout)
	for _, f := range report.Findings {
		fmt.Fprintf(stdout, "  %-8s %s\n", severityLabel(f.Severity), f)
	}
	if report.MissingPrivileges() > 0 {
		fmt.Fprintf(stdout, "  hint     an administrator grants role %s all it needs at once with: cdc-cleaner setup --role %s (with a configuration that logs in as the administrator)\n",
			config.QuoteIdentifier(report.Role), shellWord(report.Role))
	}
	names := make([]string, 0, len(cfg.Storages))
	for name := range cfg.Storages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := cfg.Storages[name]
		fmt.Fprintf(stdout, "storage %s (%s)\n", name, s.Type)
		st, closeStorage, err := checkStorage(ctx, name, s)
		defer closeStorage()
		if err != nil {
			fmt.Fprintf(stdout, "  FAIL     %v\n", err)
			report.Findings = append(report.Findings, provision.Finding{Severity: provision.Problem, Code: provision.CodeGeneral, Message: err.Error()})
			continue
		}
		switch s.Type {
		case config.StorageS3:
			fmt.Fprintf(stdout, "  ok       bucket %q reachable; the credentials may delete under prefix %q\n", s.Bucket, s.Prefix)
		default:
			fmt.Fprintf(stdout, "  ok       %s is a directory\n", s.Root)
		}
		// Promise 8: the columns' values must name files of the storage.
		// A column already reported (not readable, its schema not usable)
		// is not sampled: its problem says what to fix first.
		for _, c := range report.Columns {
			if c.Storage != name || hasProblem(report, c.Field) {
				continue
			}
			f := provision.Finding{Severity: provision.OK, Code: provision.CodeMapping, Field: c.Field}
			r, err := sampleColumn(ctx, conn, st, c)
			switch {
			case err != nil:
				f.Severity, f.Code, f.Message = provision.Problem, provision.CodeUnchecked, fmt.Sprintf("%s: could not sample its values against storage %q: %v", c.Source(), name, err)
			case r == nil:
				continue // the storage cannot look files up
			default:
				f.Message = sampleLine(*r, s)
				f.Severity = sampleSeverity(*r)
			}
			report.Findings = append(report.Findings, f)
			fmt.Fprintf(stdout, "  %-8s %s\n", severityLabel(f.Severity), f)
		}
	}
	// Promise 8: a column that references a storage's files unconfigured.
	fmt.Fprintln(stdout, "columns referencing the storages")
	checkColumns(ctx, cfg, report, stdout, stderr)
	problems, warnings := len(report.Problems()), len(report.Warnings())
	fmt.Fprintf(stdout, "%d problems, %d warnings\n", problems, warnings)
	if problems > 0 {
		return failure(fmt.Errorf("%d problems found", problems))
	}
	return nil
}

// checkStorage opens one storage and, where it can, checks it for real. The
// caller closes it with closeFn, also after an error.
func checkStorage(ctx context.Context, name string, s *config.Storage) (st cdccleaner.Storage, closeFn func(), err error) {
	storages, closeFn, err := openStorages(ctx, &config.Config{Storages: map[string]*config.Storage{name: s}}, zerolog.Nop()) // never deletes
	if err != nil {
		return nil, func() {}, err
	}
	st = storages[name]
	if c, ok := st.(checker); ok {
		if err := c.Check(ctx); err != nil {
			return nil, closeFn, fmt.Errorf("storages.%s: %w", name, err)
		}
	}
	return st, closeFn, nil
}

// shellWord quotes s for a POSIX shell unless it needs no quoting.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func severityLabel(s provision.Severity) string {
	return map[provision.Severity]string{provision.OK: "ok", provision.Warning: "warning", provision.Problem: "FAIL"}[s]
}

// hasProblem reports whether r has a problem about the column at field
// ("watch[0].columns[1]") or its entry's table ("watch[0].table").
func hasProblem(r *provision.Report, field string) bool {
	entry, _, _ := strings.Cut(field, ".columns[")
	for _, f := range r.Problems() {
		if f.Field == field || f.Field == entry+".table" {
			return true
		}
	}
	return false
}
