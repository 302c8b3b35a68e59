package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

func cmdSetup(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("setup", "[--config FILE] [--print]",
		`Creates what the cleaner needs in the database, idempotently: schema
cdc_cleaner with table failed_deletions, REPLICA IDENTITY FULL on the watched
tables, the publication (exactly the watched tables) and the pgoutput slot.
Running it again changes nothing; after editing the watch list it updates the
publication. With --print it prints the SQL instead of running it.

Exit codes: 0 done, 1 a statement failed, 2 bad configuration or database not ready.`, stderr)
	printOnly := fs.Bool("print", false, "print the SQL instead of running it (for migration tools)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *printOnly {
		fmt.Fprintf(stdout, "-- cdc-cleaner setup for slot %q and publication %q\n\n", cfg.Postgres.Slot, cfg.Postgres.Publication)
		fmt.Fprint(stdout, replication.FormatSQL(replication.SetupSQL(cfg, 0)))
		return nil
	}
	ctx := context.Background()
	conn, err := connect(ctx, cfg)
	if err != nil {
		return configErr(err)
	}
	defer conn.Close(ctx)

	// Tables, columns and server settings must be right before anything is
	// created; the publication, slot and schema are what setup is for.
	before, err := replication.Inspect(ctx, conn, cfg)
	if err != nil {
		return configErr(err)
	}
	var blocking []string
	for _, p := range before.Problems() {
		if strings.HasPrefix(p.Field, "watch") || strings.HasPrefix(p.Field, "protect") {
			if strings.Contains(p.Message, "REPLICA IDENTITY") {
				continue // setup fixes that
			}
		} else if p.Field != "" {
			continue // publication, slot: setup creates them
		} else if strings.Contains(p.Message, "cdc_cleaner.failed_deletions") {
			continue
		}
		blocking = append(blocking, p.String())
	}
	if len(blocking) > 0 {
		return configErr(errors.New("cannot set up:\n  - " + strings.Join(blocking, "\n  - ")))
	}

	err = replication.Setup(ctx, conn, cfg, func(st replication.Statement) {
		fmt.Fprintf(stdout, "- %s\n", st.Comment)
	})
	if err != nil {
		return failure(err)
	}
	after, err := replication.Inspect(ctx, conn, cfg)
	if err != nil {
		return failure(err)
	}
	if problems := after.Problems(); len(problems) > 0 {
		msg := "setup ran, but problems remain:"
		for _, p := range problems {
			msg += "\n  - " + p.String()
		}
		return failure(errors.New(msg))
	}
	for _, w := range after.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "setup complete: slot %q, publication %q; start the cleaner with: cdc-cleaner run --config %s\n", cfg.Postgres.Slot, cfg.Postgres.Publication, *cfgPath)
	return nil
}
