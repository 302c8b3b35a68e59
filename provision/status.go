package provision

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/journal"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
)

// SlotStatus is what `cdc-cleaner status` reports: the replication slot as
// the server sees it, the publication, the record of failed deletions and
// the journal.
// Its JSON form is what `status --json` prints; keys are never removed.
type SlotStatus struct {
	Slot     string `json:"slot"`
	Exists   bool   `json:"exists"`
	Plugin   string `json:"plugin"`   // "" when the slot does not exist
	Database string `json:"database"` // the database the slot belongs to
	// CurrentDatabase is the database status connected to; a slot of
	// another database cannot be used by this configuration.
	CurrentDatabase string `json:"current_database"`

	Active    bool `json:"active"`
	ActivePID int  `json:"active_pid"` // PID of the server process streaming from the slot; 0 when inactive
	// ActiveApplication and ActiveClientAddr describe the streaming
	// connection (pg_stat_replication); "" when unknown or not visible to
	// the current role.
	ActiveApplication string `json:"active_application"`
	ActiveClientAddr  string `json:"active_client_addr"`

	// LSNs as PostgreSQL writes them ("0/1A2B3C8"); "" when NULL.
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn"`
	RestartLSN        string `json:"restart_lsn"`
	// CurrentWALLSN is pg_current_wal_lsn(), or on a standby the last WAL
	// position received (or replayed).
	CurrentWALLSN string `json:"current_wal_lsn"`
	InRecovery    bool   `json:"in_recovery"`

	// RetainedBytes is current_wal_lsn - restart_lsn: the WAL the server
	// keeps on disk for this slot. nil when unknown (no slot, or an
	// invalidated slot whose restart_lsn is gone).
	RetainedBytes *int64 `json:"retained_bytes"`
	// PendingBytes is current_wal_lsn - confirmed_flush_lsn: WAL holding
	// committed changes the cleaner has not settled (confirmed) yet. It is
	// an amount of WAL, not a number of files: the queue of a running
	// cleaner lives in its memory, which another process cannot see.
	PendingBytes *int64 `json:"pending_bytes"`
	// WALStatus is pg_replication_slots.wal_status (PostgreSQL 13+):
	// reserved, extended, unreserved or lost; "" on older servers.
	WALStatus string `json:"wal_status"`
	// SafeWALSize is how much more WAL may be written before the slot is
	// at risk of invalidation (max_slot_wal_keep_size); nil when unlimited
	// or unknown.
	SafeWALSize *int64 `json:"safe_wal_size"`
	// Invalidated is set when the server gave up the slot: wal_status
	// "lost", or (PostgreSQL 16+) a conflict with recovery. A cleaner can
	// no longer stream from it; `scan` recovers what it missed.
	Invalidated        bool   `json:"invalidated"`
	InvalidationReason string `json:"invalidation_reason"` // e.g. wal_removed; "" when valid

	Publication       string   `json:"publication"`
	PublicationExists bool     `json:"publication_exists"`
	PublicationTables []string `json:"publication_tables"` // quoted and schema-qualified

	// FailedTableExists is false when cdc_cleaner.failed_deletions does not
	// exist (setup has not run); the counts are then nil.
	FailedTableExists bool `json:"failed_deletions_table_exists"`
	// FailedNote says why the counts are nil, if they are.
	FailedNote      string                  `json:"failed_deletions_note,omitempty"`
	FailedDeletions *int64                  `json:"failed_deletions"`
	FailedLast24h   *int64                  `json:"failed_deletions_24h"`
	RecentFailures  []ledger.FailedDeletion `json:"recent_failures"` // newest first, at most RecentFailuresLimit

	// Journal is what cdc_cleaner.journal holds.
	Journal JournalStatus `json:"journal"`
}

// JournalStatus is what status reports of cdc_cleaner.journal: its size
// and the re-references it recorded (promise 7). The counts are nil when
// the table does not exist or may not be read; Note then says why.
type JournalStatus struct {
	TableExists bool   `json:"table_exists"`
	Note        string `json:"note,omitempty"`
	// Rows counts the entries: exactly up to journal.ExactCountUpTo,
	// above it the planner's estimate, and RowsEstimated is then set.
	Rows          *int64 `json:"rows"`
	RowsEstimated bool   `json:"rows_estimated"`
	Bytes         *int64 `json:"bytes"` // with its indexes
	// Restored: paths referenced again and moved back from the trash.
	// Occupied: referenced again while a new file was at the path (it
	// won; nothing was restored). Dangling: referenced again and could
	// not be restored.
	Restored *int64 `json:"restored"`
	Occupied *int64 `json:"occupied"`
	Dangling *int64 `json:"dangling"`
}

// RecentFailuresLimit is how many of the newest failed deletions Status
// returns.
const RecentFailuresLimit = 5

// Status reads the state of the slot, the publication, the record of
// failed deletions and the journal. A missing slot, publication or table is
// reported in the result, not as an error; an error means the server could
// not be asked.
func Status(ctx context.Context, conn *pgx.Conn, slot, publication string) (*SlotStatus, error) {
	s := &SlotStatus{Slot: slot, Publication: publication, PublicationTables: []string{}, RecentFailures: []ledger.FailedDeletion{}}
	var version int
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_database(), pg_is_in_recovery(),
		(CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END)::text`).
		Scan(&version, &s.CurrentDatabase, &s.InRecovery, &s.CurrentWALLSN)
	if err != nil {
		return nil, fmt.Errorf("read server state: %w", err)
	}
	if err := slotStatus(ctx, conn, s, version); err != nil {
		return nil, err
	}
	if err := publicationStatus(ctx, conn, s); err != nil {
		return nil, err
	}
	if err := failedStatus(ctx, conn, s); err != nil {
		return nil, err
	}
	if err := journalStatus(ctx, conn, s); err != nil {
		return nil, err
	}
	return s, nil
}

func slotStatus(ctx context.Context, conn *pgx.Conn, s *SlotStatus, version int) error {
	// Columns that only newer servers have.
	walStatus, safeSize, conflicting, reason := "NULL::text", "NULL::bigint", "false", "NULL::text"
	if version >= 130000 {
		walStatus, safeSize = "wal_status", "safe_wal_size"
	}
	if version >= 160000 {
		conflicting = "coalesce(conflicting, false)"
	}
	if version >= 170000 {
		reason = "invalidation_reason"
	}
	var (
		plugin, database, confirmed, restart, wal, invalidation *string
		pid                                                     *int32
		retained, pending, safe                                 *int64
		conflict                                                bool
	)
	err := conn.QueryRow(ctx, `SELECT plugin, database, active, active_pid,
		confirmed_flush_lsn::text, restart_lsn::text,
		pg_wal_lsn_diff($2::pg_lsn, restart_lsn)::bigint,
		pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::bigint,
		`+walStatus+`, `+safeSize+`, `+conflicting+`, `+reason+`
		FROM pg_replication_slots WHERE slot_name = $1`, s.Slot, nullIfEmpty(s.CurrentWALLSN)).
		Scan(&plugin, &database, &s.Active, &pid, &confirmed, &restart, &retained, &pending, &wal, &safe, &conflict, &invalidation)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up slot %q: %w", s.Slot, err)
	}
	s.Exists = true
	s.Plugin, s.Database = deref(plugin), deref(database)
	s.ConfirmedFlushLSN, s.RestartLSN, s.WALStatus = deref(confirmed), deref(restart), deref(wal)
	s.RetainedBytes, s.PendingBytes, s.SafeWALSize = clampNegative(retained), clampNegative(pending), safe
	s.InvalidationReason = deref(invalidation)
	switch {
	case s.InvalidationReason != "":
	case s.WALStatus == "lost":
		s.InvalidationReason = "wal_removed"
	case conflict:
		s.InvalidationReason = "conflict with recovery"
	}
	s.Invalidated = s.InvalidationReason != ""
	if pid != nil {
		s.ActivePID = int(*pid)
		var app, addr *string
		// Visible in full only to the same role, superusers and
		// pg_read_all_stats; the rest see NULLs, which is fine here.
		err := conn.QueryRow(ctx, "SELECT application_name, host(client_addr) FROM pg_stat_replication WHERE pid = $1", *pid).Scan(&app, &addr)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("look up the connection streaming from slot %q: %w", s.Slot, err)
		}
		s.ActiveApplication, s.ActiveClientAddr = deref(app), deref(addr)
	}
	return nil
}

func publicationStatus(ctx context.Context, conn *pgx.Conn, s *SlotStatus) error {
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.Publication).Scan(&s.PublicationExists); err != nil {
		return fmt.Errorf("look up publication %q: %w", s.Publication, err)
	}
	if !s.PublicationExists {
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename)
		FROM pg_publication_tables WHERE pubname = $1 ORDER BY schemaname, tablename`, s.Publication)
	if err != nil {
		return fmt.Errorf("list tables of publication %q: %w", s.Publication, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list tables of publication %q: %w", s.Publication, err)
	}
	s.PublicationTables = append(s.PublicationTables, tables...)
	return nil
}

func failedStatus(ctx context.Context, conn *pgx.Conn, s *SlotStatus) error {
	sum, err := ledger.Summarize(ctx, conn, RecentFailuresLimit)
	if err != nil {
		return err
	}
	if !sum.Exists {
		s.FailedNote = "table cdc_cleaner.failed_deletions does not exist: run cdc-cleaner setup (or apply migrations/)"
		return nil
	}
	s.FailedTableExists = true
	if !sum.CanSelect {
		s.FailedNote = "current user may not SELECT from cdc_cleaner.failed_deletions: GRANT SELECT ON cdc_cleaner.failed_deletions TO ..."
		return nil
	}
	s.FailedDeletions, s.FailedLast24h = &sum.Total, &sum.Last24h
	s.RecentFailures = append(s.RecentFailures, sum.Recent...)
	return nil
}

func journalStatus(ctx context.Context, conn *pgx.Conn, s *SlotStatus) error {
	c, err := journal.Count(ctx, conn)
	if err != nil {
		return err
	}
	j := &s.Journal
	if !c.Exists {
		j.Note = "table " + journal.Table + " does not exist: run cdc-cleaner setup (or apply migrations/)"
		return nil
	}
	j.TableExists = true
	if !c.CanSelect {
		j.Note = "current user may not SELECT from " + journal.Table + ": GRANT SELECT ON " + journal.Table + " TO ..."
		return nil
	}
	j.Rows, j.RowsEstimated, j.Bytes = &c.Rows, c.RowsEstimated, &c.Bytes
	j.Restored, j.Occupied, j.Dangling = &c.Restored, &c.Occupied, &c.Dangling
	return nil
}

// Problems returns what stops a cleaner from streaming from the slot: the
// slot is missing, invalidated or unusable, or the publication is missing.
// status exits 1 when there is any.
func (s *SlotStatus) Problems() []string {
	var out []string
	if !s.Exists {
		out = append(out, fmt.Sprintf("replication slot %q does not exist: run cdc-cleaner setup", s.Slot))
	} else {
		if s.Invalidated {
			out = append(out, fmt.Sprintf("replication slot %q is invalidated (%s): the server no longer keeps its changes; "+
				"drop it (cdc-cleaner teardown), run cdc-cleaner setup, then cdc-cleaner scan to find the files it missed", s.Slot, s.InvalidationReason))
		}
		if s.Plugin != "pgoutput" {
			out = append(out, fmt.Sprintf("replication slot %q uses plugin %q, not pgoutput: choose another slot name or drop it", s.Slot, s.Plugin))
		}
		if s.Database != s.CurrentDatabase {
			out = append(out, fmt.Sprintf("replication slot %q belongs to database %q, not %q: choose another slot name", s.Slot, s.Database, s.CurrentDatabase))
		}
	}
	if !s.PublicationExists {
		out = append(out, fmt.Sprintf("publication %q does not exist: run cdc-cleaner setup", s.Publication))
	}
	return out
}

// Warnings returns what deserves attention without stopping the cleaner:
// an inactive slot, WAL retained beyond maxLagWarn bytes, a slot close to
// invalidation, recent failed deletions.
func (s *SlotStatus) Warnings(maxLagWarn int64) []string {
	var out []string
	if !s.Exists || s.Invalidated {
		return out
	}
	if !s.Active {
		out = append(out, "no cleaner is streaming from the slot: the slot retains WAL until one does (start cdc-cleaner run, or drop the slot with cdc-cleaner teardown if the cleaner is gone for good)")
	}
	if s.RetainedBytes != nil && maxLagWarn > 0 && *s.RetainedBytes > maxLagWarn {
		out = append(out, fmt.Sprintf("the slot retains %s of WAL, more than postgres.max_lag_warn (%s): the server cannot recycle it until the cleaner confirms its changes; "+
			"check that the cleaner is running and keeping up (its logs, cdc_cleaner_lag_bytes)", HumanBytes(*s.RetainedBytes), HumanBytes(maxLagWarn)))
	}
	if s.WALStatus == "unreserved" {
		out = append(out, "wal_status is unreserved: the slot retains more WAL than max_slot_wal_keep_size and will be invalidated at the next checkpoint unless the cleaner catches up")
	}
	if s.FailedLast24h != nil && *s.FailedLast24h > 0 {
		what := "deletions"
		if *s.FailedLast24h == 1 {
			what = "deletion"
		}
		out = append(out, fmt.Sprintf("%d %s failed in the last 24 hours: SELECT * FROM cdc_cleaner.failed_deletions ORDER BY recorded_at DESC", *s.FailedLast24h, what))
	}
	return out
}

// HumanBytes renders n bytes for people, in powers of 1024 with one
// decimal: "512 B", "12.3 MiB".
func HumanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 && n > -1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / 1024
	i := 0
	// 1023.95 would round to "1024.0": move to the next unit instead.
	for math.Abs(v) >= 1023.95 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// clampNegative turns a negative distance into 0: a slot can be ahead of
// the position a standby has received so far.
func clampNegative(p *int64) *int64 {
	if p != nil && *p < 0 {
		z := int64(0)
		return &z
	}
	return p
}
