package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

// statusTimeout bounds the queries of status, so that a monitoring script
// never hangs on a stuck server.
const statusTimeout = 30 * time.Second

// statusJSON is what status --json prints: the slot status and the verdict.
type statusJSON struct {
	*provision.SlotStatus
	Healthy         bool     `json:"healthy"`
	Problems        []string `json:"problems"`
	Warnings        []string `json:"warnings"`
	MaxLagWarnBytes int64    `json:"max_lag_warn_bytes"`
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("status", "[--config FILE] [--json]",
		`Shows the state of the replication slot: whether a cleaner is streaming from
it (and the PID of the server process serving it), confirmed_flush_lsn, the WAL
the slot retains (current WAL position - restart_lsn), wal_status and
safe_wal_size, the publication and its tables, the deletions recorded as
failed in cdc_cleaner.failed_deletions (in total, in the last 24 hours, and
the newest few), and the journal of removals (cdc_cleaner.journal): its
entries (estimated above 100000), its size, and how many removed paths
referenced again were restored, found occupied by a new upload (which won),
or left dangling (not restored; cdc-cleaner history PATH tells why).

Pending work is shown as bytes of WAL, not as a number of files: "pending"
is the WAL between the slot's confirmed_flush_lsn and the server's current
position, holding committed changes the cleaner has not settled yet (and
unrelated WAL it has not confirmed past yet). The queue of a running cleaner
lives in its memory, which this separate process cannot see.

Exit codes: 0 the slot exists and is healthy (an inactive slot or a large lag
is reported, not failed); 1 the slot or the publication is missing, the slot
is invalidated (wal_status lost) or unusable, the database cannot be reached,
the configuration is bad, or the command fails.`, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object on stdout, for scripts (problems and hints go in it too)")
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, errHelp) {
			return err
		}
		return failure(err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return failure(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	conn, err := connect(ctx, cfg)
	if err != nil {
		return failure(err)
	}
	defer conn.Close(context.Background())
	st, err := provision.Status(ctx, conn, cfg.Postgres.Slot, cfg.Postgres.Publication)
	if err != nil {
		return failure(err)
	}
	maxLag := int64(min(uint64(cfg.Postgres.MaxLagWarn), math.MaxInt64))
	out := statusJSON{SlotStatus: st, Problems: st.Problems(), Warnings: st.Warnings(maxLag), MaxLagWarnBytes: maxLag}
	if out.Problems == nil {
		out.Problems = []string{}
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	out.Healthy = len(out.Problems) == 0
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return failure(fmt.Errorf("write JSON: %w", err))
		}
	} else {
		printStatus(stdout, cfg, out)
	}
	switch len(out.Problems) {
	case 0:
		return nil
	case 1:
		return failure(errors.New(out.Problems[0]))
	default:
		return failure(fmt.Errorf("%d problems: %s", len(out.Problems), strings.Join(out.Problems, "; ")))
	}
}

// printStatus writes the report for people: aligned lines, then problems
// and hints.
func printStatus(stdout io.Writer, cfg *config.Config, out statusJSON) {
	st := out.SlotStatus
	// A fixed width, so that the values line up the same way whatever
	// lines a state leaves out.
	line := func(label, format string, args ...any) {
		fmt.Fprintf(stdout, "%-21s%s\n", label, fmt.Sprintf(format, args...))
	}
	bytes := func(p *int64) string {
		if p == nil {
			return "unknown"
		}
		return fmt.Sprintf("%s (%d bytes)", provision.HumanBytes(*p), *p)
	}
	line("database", "%s", config.RedactURL(cfg.Postgres.URL))
	if !st.Exists {
		line("slot", "%q does not exist", st.Slot)
	} else {
		line("slot", "%q (plugin %s, database %s)", st.Slot, st.Plugin, st.Database)
		switch {
		case st.Active:
			who := ""
			if st.ActiveApplication != "" {
				who = " " + st.ActiveApplication
			}
			if st.ActiveClientAddr != "" {
				who += " from " + st.ActiveClientAddr
			}
			if who != "" {
				who = ", for" + who
			}
			line("state", "active: PID %d (the server process streaming the slot%s)", st.ActivePID, who)
		default:
			line("state", "inactive (no cleaner is streaming)")
		}
		walStatus := st.WALStatus
		if walStatus == "" {
			walStatus = "unknown (PostgreSQL 13+ reports it)"
		}
		if st.Invalidated {
			walStatus += fmt.Sprintf(" (invalidated: %s)", st.InvalidationReason)
		}
		line("wal_status", "%s", walStatus)
		line("confirmed_flush_lsn", "%s", orNone(st.ConfirmedFlushLSN))
		line("restart_lsn", "%s", orNone(st.RestartLSN))
		current := orNone(st.CurrentWALLSN)
		if st.InRecovery {
			current += " (standby: last received)"
		}
		line("current_wal_lsn", "%s", current)
		line("retained WAL", "%s since restart_lsn", bytes(st.RetainedBytes))
		line("pending WAL", "%s of committed changes not yet confirmed by the cleaner", bytes(st.PendingBytes))
		switch {
		case st.SafeWALSize != nil:
			line("safe_wal_size", "%s before the slot risks invalidation", bytes(st.SafeWALSize))
		case st.WALStatus != "" && st.WALStatus != "lost":
			line("safe_wal_size", "unlimited (max_slot_wal_keep_size = -1)")
		}
	}
	switch {
	case !st.PublicationExists:
		line("publication", "%q does not exist", st.Publication)
	case len(st.PublicationTables) == 0:
		line("publication", "%q (no tables)", st.Publication)
	default:
		line("publication", "%q: %s", st.Publication, strings.Join(st.PublicationTables, ", "))
	}
	switch {
	case st.FailedDeletions == nil:
		line("failed deletions", "unknown: %s", st.FailedNote)
	case *st.FailedDeletions == 0:
		line("failed deletions", "none")
	default:
		line("failed deletions", "%d in total, %d in the last 24 hours; newest:", *st.FailedDeletions, *st.FailedLast24h)
	}
	if len(st.RecentFailures) > 0 {
		fw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, f := range st.RecentFailures {
			// %q: a path comes from a row and may hold anything.
			fmt.Fprintf(fw, "  %s\t%s\t%q\t%s\n", f.RecordedAt.UTC().Format(time.RFC3339), f.Storage, f.Path, f.Reason)
		}
		fw.Flush()
	}
	switch j := st.Journal; {
	case j.Rows == nil || j.Bytes == nil || j.Restored == nil || j.Occupied == nil || j.Dangling == nil:
		note := j.Note
		if note == "" {
			note = "not read"
		}
		line("journal", "unknown: %s", note)
	default:
		entries := fmt.Sprintf("%d entries", *j.Rows)
		if j.RowsEstimated {
			entries = fmt.Sprintf("about %d entries (estimated)", *j.Rows)
		}
		line("journal", "%s, %s; restored %d, occupied %d (a new upload won), dangling %d",
			entries, provision.HumanBytes(*j.Bytes), *j.Restored, *j.Occupied, *j.Dangling)
	}
	for _, p := range out.Problems {
		fmt.Fprintf(stdout, "problem: %s\n", p)
	}
	for _, h := range out.Warnings {
		fmt.Fprintf(stdout, "hint: %s\n", h)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
