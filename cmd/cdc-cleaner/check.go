package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check", "[--config FILE]",
		`Validates the configuration and the database (wal_level, privileges, watched
tables and columns, replica identity, publication, slot, indexes on watched
columns) and prints a readable report.

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
	report, err := replication.Inspect(ctx, conn, cfg)
	if err != nil {
		return failure(err)
	}
	for _, f := range report.Findings {
		label := map[replication.Severity]string{replication.OK: "ok", replication.Warning: "warning", replication.Problem: "FAIL"}[f.Severity]
		fmt.Fprintf(stdout, "  %-8s %s\n", label, f)
	}
	for name, s := range cfg.Storages {
		fmt.Fprintf(stdout, "storage %s (%s)\n", name, s.Type)
		if _, closeFn, err := openStorages(&config.Config{Storages: map[string]*config.Storage{name: s}}); err != nil {
			fmt.Fprintf(stdout, "  FAIL     %v\n", err)
			report.Findings = append(report.Findings, replication.Finding{Severity: replication.Problem, Message: err.Error()})
		} else {
			closeFn()
			fmt.Fprintf(stdout, "  ok       reachable\n")
		}
	}
	problems, warnings := len(report.Problems()), len(report.Warnings())
	fmt.Fprintf(stdout, "%d problems, %d warnings\n", problems, warnings)
	if problems > 0 {
		return failure(fmt.Errorf("%d problems found", problems))
	}
	return nil
}
