package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

func cmdTeardown(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("teardown", "[--config FILE]",
		`Drops the replication slot and the publication, so that an uninstalled
cleaner retains no WAL. Schema cdc_cleaner (with its record of failed
deletions) and the tables' replica identity are left as they are.

It drops only what is the cleaner's: a slot that cdc_cleaner.slots does not
record as created by setup (another plugin's, say) and a publication setup
did not create are left as they are, and the exit code is 1.

Exit codes: 0 done, 1 failure (the slot is in use by a running cleaner, or
something of the configured name is not the cleaner's and was left).`, stderr)
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
	d, err := provision.Teardown(ctx, conn, cfg.Postgres.Slot, cfg.Postgres.Publication)
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
	if d.KeptSlot == "" {
		report("replication slot", cfg.Postgres.Slot, d.Slot)
	}
	if d.KeptPublication == "" {
		report("publication", cfg.Postgres.Publication, d.Publication)
	}
	report("event trigger", provision.EventTriggerName(cfg.Postgres.Publication), d.EventTrigger)
	if kept := d.Kept(); len(kept) > 0 {
		return failure(errors.New("left what is not the cleaner's:\n  - " + strings.Join(kept, "\n  - ")))
	}
	return nil
}
