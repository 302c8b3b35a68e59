package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

func cmdSetup(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("setup", "[--config FILE] [--print] [--role NAME] [--adopt-slot]",
		`Creates what the cleaner needs in the database, idempotently: schema
cdc_cleaner with table failed_deletions, REPLICA IDENTITY FULL on the watched
tables, the publication (exactly the watched tables) and the pgoutput slot.
Running it again changes nothing; after editing the watch list it updates the
publication. With --print it prints the SQL instead of running it.

Setup never changes what it did not create. It refuses (exit 1, saying what
to rename) a publication of the configured name that it did not create, and
a slot of that name that cdc_cleaner.slots does not record as its own:
another consumer may read them. A slot an earlier version of cdc-cleaner
created (before it kept that record) is recorded with --adopt-slot. The
event trigger that gives new partitions REPLICA IDENTITY FULL is installed
only when a watched table is partitioned (and setup runs as a superuser).

Run setup as an administrator (the tables' owner, with REPLICATION). With
--role NAME it also creates the role NAME, if missing, with LOGIN and
REPLICATION and no password, and grants it exactly what run and status need:
SELECT on the watched and protect columns, INSERT and SELECT on
cdc_cleaner.failed_deletions. Set its password yourself (ALTER ROLE NAME
PASSWORD '...') and put that role in the postgres.url that run uses. Run
setup --role again after editing the watch or protect lists.

Exit codes: 0 done, 1 a statement failed, 2 bad configuration or database not ready.`, stderr)
	printOnly := fs.Bool("print", false, "print the SQL instead of running it (for migration tools)")
	role := fs.String("role", "", "also create `NAME` (LOGIN REPLICATION, no password) and grant it exactly what run needs")
	adoptSlot := fs.Bool("adopt-slot", false, "record an existing pgoutput slot of the configured name as the cleaner's own (one an earlier cdc-cleaner created); never use it for another consumer's slot")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := checkRoleName(*role); err != nil {
		return configErr(err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	opts := provision.SetupOptions{Role: *role, AdoptSlot: *adoptSlot}
	if *printOnly {
		fmt.Fprintf(stdout, "-- cdc-cleaner setup for slot %q and publication %q\n", cfg.Postgres.Slot, cfg.Postgres.Publication)
		if *role != "" {
			fmt.Fprintf(stdout, "-- and the role %q that cdc-cleaner run logs in as\n", *role)
		}
		fmt.Fprint(stdout, `-- Every statement is idempotent. A migration tool may run them all in one
-- transaction except the last, which creates the slot: PostgreSQL refuses
-- that in a transaction that has written, so run it on its own.

`)
		fmt.Fprint(stdout, provision.FormatSQL(provision.SetupSQL(cfg, 0, opts)))
		return nil
	}
	ctx := context.Background()
	conn, err := connectNotices(ctx, cfg, func(msg string) { fmt.Fprintf(stdout, "warning: %s\n", msg) })
	if err != nil {
		return configErr(err)
	}
	defer conn.Close(ctx)

	// Tables, columns and server settings must be right before anything is
	// created; the publication, slot and schema are what setup is for.
	before, err := provision.Inspect(ctx, conn, cfg)
	if err != nil {
		return configErr(err)
	}
	// What is not the cleaner's is never changed: refuse before anything
	// is created.
	var conflicts []string
	for _, c := range before.Conflicts() {
		if c.Conflict == provision.UnrecordedSlot && *adoptSlot {
			continue
		}
		conflicts = append(conflicts, c.String())
	}
	if len(conflicts) > 0 {
		return failure(errors.New("setup changes nothing it did not create:\n  - " + strings.Join(conflicts, "\n  - ")))
	}
	var blocking []string
	for _, p := range before.Problems() {
		if blocksSetup(p) {
			blocking = append(blocking, p.String())
		}
	}
	if len(blocking) > 0 {
		return configErr(errors.New("cannot set up:\n  - " + strings.Join(blocking, "\n  - ")))
	}

	err = provision.Setup(ctx, conn, cfg, opts, func(st provision.Statement) {
		fmt.Fprintf(stdout, "- %s\n", st.Comment)
	})
	if err != nil {
		return failure(err)
	}
	after, err := provision.Inspect(ctx, conn, cfg)
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
	if *role != "" {
		who := config.QuoteIdentifier(*role)
		fmt.Fprintf(stdout, `role %s may log in, stream from the slot and read only the watched and protect columns.
setup sets no password: if it has none yet, set one (ALTER ROLE %s PASSWORD '...'), put
the role in the postgres.url of the configuration run uses, and verify with cdc-cleaner check.
`, who, who)
	}
	return nil
}

// blocksSetup reports whether problem p, found before setup runs, keeps it
// from running: setup fixes what it creates (replica identity, the
// cleaner's own schema, the publication, the slot: all checked again
// after it ran), and leaves to its own statements to fail on a standby or
// for a role without REPLICATION, saying so. Anything else (a server
// setting, a watched table or column that is missing or of the wrong
// type, a privilege on a watched table, a check that could not run) must
// be fixed first.
func blocksSetup(p provision.Finding) bool {
	if p.SetupFixes {
		return false
	}
	switch p.Code {
	case provision.CodeReplicaIdentity, provision.CodeCleanerSchema, provision.CodePublication, provision.CodeSlot,
		provision.CodeStandby, provision.CodeNoReplication:
		return false
	}
	return true
}

// checkRoleName rejects what cannot be a role name. The name is taken as
// written, like the user name in postgres.url: no case folding.
func checkRoleName(name string) error {
	switch {
	case name == "":
		return nil
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("--role: %q: a role name cannot contain control characters", name)
	case len(name) > 63:
		return fmt.Errorf("--role: %q is %d bytes long; PostgreSQL allows at most 63", name, len(name))
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf("--role: %q: names beginning with pg_ are reserved by PostgreSQL", name)
	}
	return nil
}
