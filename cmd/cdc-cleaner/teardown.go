package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

func cmdTeardown(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("teardown", "[--config FILE]",
		`Drops the replication slot and the publication, so that an uninstalled
cleaner retains no WAL. Schema cdc_cleaner (with its record of failed
deletions) and the tables' replica identity are left as they are.

Exit codes: 0 done, 1 failure (for example the slot is in use by a running cleaner).`, stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return failure(err)
	}
	ctx := context.Background()
	conn, err := connect(ctx, cfg)
	if err != nil {
		return failure(err)
	}
	defer conn.Close(ctx)
	d, err := replication.Teardown(ctx, conn, cfg.Postgres.Slot, cfg.Postgres.Publication)
	report := func(what, name string, dropped bool) {
		if dropped {
			fmt.Fprintf(stdout, "dropped %s %q\n", what, name)
		} else {
			fmt.Fprintf(stdout, "%s %q did not exist\n", what, name)
		}
	}
	if err != nil {
		return failure(err)
	}
	report("replication slot", cfg.Postgres.Slot, d.Slot)
	report("publication", cfg.Postgres.Publication, d.Publication)
	report("event trigger", replication.EventTriggerName(cfg.Postgres.Publication), d.EventTrigger)
	return nil
}
