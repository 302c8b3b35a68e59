package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check", "[--config FILE]",
		`Validates the configuration and the database (wal_level, privileges, watched
tables and columns, replica identity, publication, slot, indexes on watched
columns, values of watched and protect columns that are not canonical paths)
and prints a readable report.

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
		label := map[provision.Severity]string{provision.OK: "ok", provision.Warning: "warning", provision.Problem: "FAIL"}[f.Severity]
		fmt.Fprintf(stdout, "  %-8s %s\n", label, f)
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
		err := checkStorage(ctx, name, s)
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

// checkStorage opens one storage and, where it can, checks it for real.
func checkStorage(ctx context.Context, name string, s *config.Storage) error {
	storages, closeFn, err := openStorages(ctx, &config.Config{Storages: map[string]*config.Storage{name: s}})
	if err != nil {
		return err
	}
	defer closeFn()
	if c, ok := storages[name].(checker); ok {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("storages.%s: %w", name, err)
		}
	}
	return nil
}

// shellWord quotes s for a POSIX shell unless it needs no quoting.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
