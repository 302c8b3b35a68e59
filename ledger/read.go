package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier is what the ledger's reads need of a connection: a *pgx.Conn, a
// pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Readiness says whether the current role can record failures as
// RecordFailures does, from the catalog (which any role may read).
type Readiness struct {
	// Exists is false when the table does not exist (setup has not run);
	// the other fields are then zero.
	Exists bool
	// CanInsert: the role may INSERT into every column RecordFailures
	// writes (a grant on the table or on the columns).
	CanInsert bool
	// Sequence is the quoted name of the sequence that numbers the rows,
	// "" when there is none; CanUseSequence says whether the role may take
	// numbers from it (USAGE or UPDATE).
	Sequence       string
	CanUseSequence bool
	// OnceIndex: failed_deletions_once_idx exists, the unique index that
	// keeps a failure replayed after a crash from being recorded twice
	// (RecordFailures' ON CONFLICT needs it). An earlier schema lacks it.
	OnceIndex bool
}

// CheckReadiness reads the Readiness of the current role. An error means
// it could not tell. It does not check USAGE on schema cdc_cleaner, which
// the ledger shares with the cleaner's other objects.
func CheckReadiness(ctx context.Context, q Querier) (Readiness, error) {
	var r Readiness
	// has_column_privilege counts table-level grants too. nextval needs
	// USAGE or UPDATE on the sequence.
	var seq *string
	var canSeq *bool
	err := q.QueryRow(ctx, `SELECT (SELECT coalesce(bool_and(has_column_privilege(c.oid, a.attnum, 'INSERT')), false)
			FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname::text = ANY($1::text[]) AND NOT a.attisdropped),
		s.name, s.ok
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN LATERAL (
			SELECT quote_ident(sn.nspname) || '.' || quote_ident(sc.relname) AS name,
				has_sequence_privilege(sc.oid, 'USAGE') OR has_sequence_privilege(sc.oid, 'UPDATE') AS ok
			FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
			JOIN pg_namespace sn ON sn.oid = sc.relnamespace
			WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
				AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')
			ORDER BY d.refobjsubid LIMIT 1) s ON true
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'failed_deletions' AND c.relkind IN ('r', 'p')`, columns).
		Scan(&r.CanInsert, &seq, &canSeq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Readiness{}, nil
	case err != nil:
		return Readiness{}, fmt.Errorf("look up %s: %w", Table, err)
	}
	r.Exists = true
	if seq != nil {
		r.Sequence = *seq
		r.CanUseSequence = canSeq == nil || *canSeq
	}
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'failed_deletions_once_idx' AND c.relkind = 'i')`).Scan(&r.OnceIndex); err != nil {
		return Readiness{}, fmt.Errorf("look up cdc_cleaner.failed_deletions_once_idx: %w", err)
	}
	return r, nil
}

// FailedDeletion is one row of the table, as status shows it.
type FailedDeletion struct {
	Storage    string    `json:"storage"`
	Path       string    `json:"path"`
	Reason     string    `json:"reason"`
	Source     string    `json:"source"`
	RecordedAt time.Time `json:"recorded_at"`
}

// Summary is what status shows of the table.
type Summary struct {
	// Exists is false when the table does not exist (setup has not run).
	Exists bool
	// CanSelect is false when the current role may not read the table;
	// the counts are then zero.
	CanSelect bool
	// Total counts every row, Last24h those recorded in the last 24 hours.
	Total, Last24h int64
	// Recent are the newest rows, newest first.
	Recent []FailedDeletion
}

// Summarize counts the recorded failures and reads the newest, at most
// limit. A table that does not exist, or that the current role may not
// read, is said so in the Summary, not as an error; an error means the
// server could not be asked.
func Summarize(ctx context.Context, q Querier, limit int) (Summary, error) {
	var s Summary
	var canSelect *bool
	// Looked up in the catalogs: to_regclass fails outright for a role
	// without USAGE on schema cdc_cleaner.
	err := q.QueryRow(ctx, `SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'failed_deletions'`).Scan(&canSelect)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return s, fmt.Errorf("look up %s: %w", Table, err)
	}
	if canSelect == nil {
		return s, nil
	}
	s.Exists = true
	if !*canSelect {
		return s, nil
	}
	s.CanSelect = true
	err = q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE recorded_at > now() - interval '24 hours')
		FROM `+Table).Scan(&s.Total, &s.Last24h)
	if err != nil {
		return s, fmt.Errorf("count failed deletions: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT storage, path, reason, source, recorded_at
		FROM `+Table+` ORDER BY recorded_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return s, fmt.Errorf("read the newest failed deletions: %w", err)
	}
	s.Recent, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (FailedDeletion, error) {
		var f FailedDeletion
		err := r.Scan(&f.Storage, &f.Path, &f.Reason, &f.Source, &f.RecordedAt)
		return f, err
	})
	if err != nil {
		return s, fmt.Errorf("read the newest failed deletions: %w", err)
	}
	return s, nil
}

// Unnamed counts the failures recorded for storage that name no file: a
// change whose old values did not arrive (reason old_values_missing) and
// a TRUNCATE (truncated). newest is when the latest was recorded; zero
// when there is none.
func Unnamed(ctx context.Context, q Querier, storage string) (n int64, newest time.Time, err error) {
	var last *time.Time
	err = q.QueryRow(ctx, `SELECT count(*), max(recorded_at) FROM `+Table+`
		WHERE storage = $1 AND reason IN ('old_values_missing', 'truncated')`, storage).Scan(&n, &last)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count the failures of storage %q that name no file: %w", storage, err)
	}
	if last != nil {
		newest = *last
	}
	return n, newest, nil
}
