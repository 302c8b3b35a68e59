package journal

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
)

// Querier is what the journal's reads need of a connection: a *pgx.Conn, a
// pool or a transaction; the same as the ledger's.
type Querier = ledger.Querier

// History returns every entry of path, of storage or of every storage when
// storage is "", newest first (by when they were written). The path is
// looked up as Write stores it (ledger.Printable); a path the journal
// knows nothing of gives no entries and no error. A missing table is an
// error: ask Count or CheckReadiness first to tell it apart.
func History(ctx context.Context, q Querier, path, storage string) ([]cdccleaner.JournalEntry, error) {
	path = ledger.Printable(path)
	rows, err := q.Query(ctx, `SELECT `+selectColumns+` FROM `+Table+` j
		WHERE j.path = $1 AND ($2 = '' OR j.storage = $2)
		ORDER BY j.at DESC, j.id DESC`, path, storage)
	if err != nil {
		return nil, fmt.Errorf("read the journal of %q: %w", path, err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (cdccleaner.JournalEntry, error) {
		var e cdccleaner.JournalEntry
		err := scanEntry(r, &e, nil)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the journal of %q: %w", path, err)
	}
	return entries, nil
}

// ExactCountUpTo is the size up to which Count counts the rows; above it
// (as the planner's statistics say) it reports their estimate, since an
// exact count reads the whole table.
const ExactCountUpTo = 100_000

// Counts is what status shows of the table.
type Counts struct {
	// Exists is false when the table does not exist (setup has not run);
	// the other fields are then zero.
	Exists bool
	// CanSelect is false when the current role may not read the table;
	// the counts are then zero.
	CanSelect bool
	// Rows counts the entries: exactly up to ExactCountUpTo, above it the
	// planner's estimate (pg_class.reltuples, as of the last VACUUM or
	// ANALYZE), and RowsEstimated is then set.
	Rows          int64
	RowsEstimated bool
	// Bytes is the size of the table with its indexes and TOAST
	// (pg_total_relation_size).
	Bytes int64
	// Restored, Occupied and Dangling count the entries of those events
	// (cdccleaner.JournalRestored and the others), exactly.
	Restored, Occupied, Dangling int64
}

// Count counts the entries of the table. A table that does not exist, or
// that the current role may not read, is said so in the result, not as an
// error; an error means the server could not be asked.
func Count(ctx context.Context, q Querier) (Counts, error) {
	var c Counts
	var canSelect *bool
	var estimate float64
	var bytes int64
	// Looked up in the catalogs: to_regclass fails outright for a role
	// without USAGE on schema cdc_cleaner. Sizes and statistics need no
	// privilege on the table.
	err := q.QueryRow(ctx, `SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'),
			c.reltuples::float8, pg_total_relation_size(c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'journal' AND c.relkind IN ('r', 'p')`).Scan(&canSelect, &estimate, &bytes)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return c, nil
	case err != nil:
		return c, fmt.Errorf("look up %s: %w", Table, err)
	}
	c.Exists = true
	if canSelect == nil || !*canSelect {
		return c, nil
	}
	c.CanSelect = true
	c.Bytes = bytes
	// reltuples is -1 before the first VACUUM or ANALYZE (PostgreSQL 14+),
	// 0 before it on older servers: both are counted.
	if estimate > ExactCountUpTo {
		c.Rows, c.RowsEstimated = int64(estimate), true
	} else if err := q.QueryRow(ctx, `SELECT count(*) FROM `+Table).Scan(&c.Rows); err != nil {
		return c, fmt.Errorf("count the journal entries: %w", err)
	}
	// The condition is journal_reference_idx's, so the counts read only
	// that small index.
	err = q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE event = $1), count(*) FILTER (WHERE event = $2), count(*) FILTER (WHERE event = $3)
		FROM `+Table+` WHERE event NOT IN ('trashed', 'deleted', 'absent')`,
		cdccleaner.JournalRestored, cdccleaner.JournalOccupied, cdccleaner.JournalDangling).Scan(&c.Restored, &c.Occupied, &c.Dangling)
	if err != nil {
		return c, fmt.Errorf("count the restored, occupied and dangling journal entries: %w", err)
	}
	return c, nil
}

// Readiness says whether the current role can use the journal as run,
// history and status do, from the catalog (which any role may read).
type Readiness struct {
	// Exists is false when the table does not exist (setup has not run);
	// the other fields are then false.
	Exists bool
	// CanInsert: the role may INSERT into every column Write writes (a
	// grant on the table or on the columns). The id is an identity
	// column, which needs no privilege on its sequence.
	CanInsert bool
	// CanSelect: the role may read every column (Latest, History,
	// Count).
	CanSelect bool
	// CanDelete: the role may DELETE from the table (Prune).
	CanDelete bool
}

// CheckReadiness reads the Readiness of the current role. An error means
// it could not tell. It does not check USAGE on schema cdc_cleaner, which
// the journal shares with the cleaner's other objects.
func CheckReadiness(ctx context.Context, q Querier) (Readiness, error) {
	var r Readiness
	// has_column_privilege counts table-level grants too. A column
	// missing (a table from an unknown version) makes the role unable to
	// write it.
	err := q.QueryRow(ctx, `SELECT
			(SELECT coalesce(bool_and(has_column_privilege(c.oid, a.attnum, 'INSERT')) AND count(*) = cardinality($1::text[]), false)
				FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname::text = ANY($1::text[]) AND NOT a.attisdropped),
			(SELECT coalesce(bool_and(has_column_privilege(c.oid, a.attnum, 'SELECT')), false)
				FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
			has_table_privilege(c.oid, 'DELETE')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'journal' AND c.relkind IN ('r', 'p')`, columns).
		Scan(&r.CanInsert, &r.CanSelect, &r.CanDelete)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Readiness{}, nil
	case err != nil:
		return Readiness{}, fmt.Errorf("look up %s: %w", Table, err)
	}
	r.Exists = true
	return r, nil
}
