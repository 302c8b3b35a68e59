// Package ledger owns the table cdc_cleaner.failed_deletions: it records
// there the candidates that could not be deleted, so that nothing is lost
// silently, and it is the one place that reads the table back (for
// status, scan and check). The table itself is created by
// migrations/0001_cdc_cleaner_schema.sql.
package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Table is the table the ledger keeps.
const Table = "cdc_cleaner.failed_deletions"

// columns are the columns RecordFailures inserts into, in the order of its
// parameters; id and recorded_at take their defaults. CheckReadiness
// checks that the current role may insert into each.
var columns = []string{"storage", "path", "reason", "detail", "source", "commit_lsn", "commit_time"}

// insertSQL inserts one row per element of its arrays. A failure recorded
// before (failed_deletions_once_idx) is skipped.
var insertSQL = `INSERT INTO ` + Table + `
		(` + strings.Join(columns, ", ") + `)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]::pg_lsn[], $7::timestamptz[])
		ON CONFLICT (storage, md5(path), reason, source, commit_lsn) DO NOTHING`

// Ledger implements cdccleaner.FailureRecorder on a connection pool.
type Ledger struct {
	pool *pgxpool.Pool
}

var _ cdccleaner.FailureRecorder = (*Ledger)(nil)

// New returns a Ledger writing through pool.
func New(pool *pgxpool.Pool) *Ledger { return &Ledger{pool: pool} }

// RecordFailures inserts every failure in one statement; it returns nil only
// once they are committed. A failure recorded before (the same storage,
// path, reason, source and commit LSN: a transaction replayed after a
// crash) is not recorded twice.
func (l *Ledger) RecordFailures(ctx context.Context, failures []cdccleaner.Failure) error {
	if len(failures) == 0 {
		return nil
	}
	n := len(failures)
	storage := make([]string, n)
	path := make([]string, n)
	reason := make([]string, n)
	detail := make([]string, n)
	source := make([]string, n)
	lsn := make([]string, n)
	at := make([]time.Time, n)
	for i, f := range failures {
		storage[i] = f.Storage
		path[i] = Printable(f.Path)
		reason[i] = f.Reason
		detail[i] = Printable(f.Detail)
		source[i] = f.Source
		lsn[i] = f.CommitLSN.String()
		at[i] = f.CommitTime
	}
	_, err := l.pool.Exec(ctx, insertSQL, storage, path, reason, detail, source, lsn, at)
	if err != nil {
		return fmt.Errorf("record %d failed deletions: %w", n, err)
	}
	return nil
}

// Printable makes s storable in a text column: NUL bytes (which a path from
// a JSON document may hold) become U+FFFD and invalid UTF-8 is replaced.
func Printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
