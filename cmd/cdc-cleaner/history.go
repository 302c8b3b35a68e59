package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/journal"
)

// historyEntry is one element of the array history --json prints. Its
// keys are a contract for scripts: never renamed or removed.
type historyEntry struct {
	At      time.Time `json:"at"` // when the entry was written
	Event   string    `json:"event"`
	Storage string    `json:"storage"`
	Path    string    `json:"path"`
	// Location is where a trashed file went, relative to the storage.
	Location   string     `json:"location"`
	Source     string     `json:"source"`      // schema.table.column of the change
	Xid        *uint32    `json:"xid"`         // null when unknown
	CommitLSN  string     `json:"commit_lsn"`  // "16/B374D848"
	CommitTime *time.Time `json:"commit_time"` // null when unknown
	Detail     string     `json:"detail"`
}

func cmdHistory(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("history", "PATH [--storage NAME] [--json] [--config FILE]",
		`Prints what the journal (cdc_cleaner.journal) knows of PATH, newest first:
when and why the file was removed (trashed, deleted, or already absent), and
when a row referenced it again: restored from the trash, occupied (a new
file was already there, and won), or dangling (it could not be restored).
Each entry names the storage, where a trashed file went, the column of the
change (schema.table.column), its transaction (xid), commit LSN and commit
time, and any detail, such as why a reference dangles.

PATH is the path in its storage, as the column holds it ("photos/a.jpg"); it
may come before or after the flags ("--" before a PATH that starts with
"-"). The journal is pruned with the trash: entries older than twice the
storage's trash_retention are gone. With --json: one JSON array of objects with the keys at, event,
storage, path, location, source, xid, commit_lsn, commit_time and detail
("[]" when nothing is known).

Exit codes: 0 the journal knows something of PATH; 1 it knows nothing (in
the storage given); 2 bad flags or configuration, unknown storage, or the
question could not be asked (the database cannot be reached, the journal
table does not exist: run cdc-cleaner setup, or may not be read).`, stderr)
	storage := fs.String("storage", "", "only the entries of storage `NAME` (default: every storage)")
	asJSON := fs.Bool("json", false, "print a JSON array on stdout, for scripts")
	pos, err := parseFlagsAndArgs(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return configErr(errors.New("which path? cdc-cleaner history PATH"))
	case len(pos) > 1:
		return configErr(fmt.Errorf("unexpected argument %q: one PATH at a time", pos[1]))
	case pos[0] == "":
		return configErr(errors.New("PATH is empty"))
	}
	path := pos[0]
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *storage != "" {
		if _, ok := cfg.Storages[*storage]; !ok {
			return configErr(fmt.Errorf("--storage %q: no such storage in %s (configured: %s)", *storage, *cfgPath, strings.Join(sortedNames(cfg.Storages), ", ")))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	// 1 means "nothing known": a question that could not be asked is 2,
	// so that a script never mistakes one for the other.
	conn, err := connect(ctx, cfg)
	if err != nil {
		return configErr(err)
	}
	defer conn.Close(context.Background())
	ready, err := journal.CheckReadiness(ctx, conn)
	switch {
	case err != nil:
		return configErr(err)
	case !ready.Exists:
		return configErr(fmt.Errorf("table %s does not exist: run cdc-cleaner setup (or apply migrations/0001_cdc_cleaner_schema.sql)", journal.Table))
	case !ready.CanSelect:
		return configErr(fmt.Errorf("the current user may not read %s: GRANT SELECT ON %s TO ...", journal.Table, journal.Table))
	}
	entries, err := journal.History(ctx, conn, path, *storage)
	if err != nil {
		return configErr(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(historyJSON(entries)); err != nil {
			return failure(fmt.Errorf("write JSON: %w", err))
		}
	} else if len(entries) > 0 {
		printHistory(stdout, path, entries)
	}
	if len(entries) == 0 {
		where := "any storage"
		if *storage != "" {
			where = "storage " + *storage
		}
		return failure(fmt.Errorf("the journal knows nothing of %s (%s)", printablePath(path), where))
	}
	return nil
}

// historyJSON turns entries into what --json prints; never nil, so that
// nothing known is "[]".
func historyJSON(entries []cdccleaner.JournalEntry) []historyEntry {
	out := make([]historyEntry, 0, len(entries))
	for _, e := range entries {
		h := historyEntry{
			At: e.At.UTC(), Event: e.Event, Storage: e.Storage, Path: e.Path, Location: e.Location,
			Source: e.Source, CommitLSN: e.CommitLSN.String(), Detail: e.Detail,
		}
		if e.Xid != 0 {
			xid := e.Xid
			h.Xid = &xid
		}
		if !e.CommitTime.IsZero() {
			t := e.CommitTime.UTC()
			h.CommitTime = &t
		}
		out = append(out, h)
	}
	return out
}

// printHistory writes entries for people: a line naming the path, then
// one aligned row per entry. Values that may hold anything (paths,
// details) are Go-quoted when they hold a control character or invalid
// UTF-8; "-" stands for nothing.
func printHistory(w io.Writer, path string, entries []cdccleaner.JournalEntry) {
	what := "entries"
	if len(entries) == 1 {
		what = "entry"
	}
	fmt.Fprintf(w, "%s: %d %s, newest first\n", printablePath(path), len(entries), what)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tSTORAGE\tWHERE IT WENT\tSOURCE\tXID\tCOMMIT LSN\tCOMMIT TIME\tDETAIL")
	for _, e := range entries {
		xid, commitTime := "-", "-"
		if e.Xid != 0 {
			xid = strconv.FormatUint(uint64(e.Xid), 10)
		}
		if !e.CommitTime.IsZero() {
			commitTime = e.CommitTime.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.At.UTC().Format(time.RFC3339), e.Event, cell(e.Storage), cell(e.Location), cell(e.Source),
			xid, e.CommitLSN, commitTime, cell(e.Detail))
	}
	tw.Flush()
}

// cell is a value as printHistory shows it.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return printablePath(s)
}
