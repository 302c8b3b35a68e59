package journal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/internal/periodic"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
)

// Table is the table the journal keeps.
const Table = "cdc_cleaner.journal"

// columns are the columns Write inserts into, in the order of its arrays; id
// and at take their defaults. CheckReadiness checks that the current role
// may insert into each.
var columns = []string{"storage", "path", "event", "location", "source", "xid", "commit_lsn", "commit_time", "detail"}

// selectColumns are the columns readers scan, in the order scanEntry
// expects.
const selectColumns = `j.storage, j.path, j.event, j.location, j.source, j.xid, j.commit_lsn::text, j.commit_time, j.detail, j.at`

// latestSQL finds, for each path and bound, the entry of the path in
// storage $1 written last among those whose commit LSN is at or before
// the bound: one index scan per path (journal_path_idx, a hash index on
// path), whose few rows are sorted by id (cdccleaner.Journal.Latest says
// why not by LSN).
const latestSQL = `SELECT q.ord, ` + selectColumns + `
	FROM unnest($2::text[], $3::text[]::pg_lsn[]) WITH ORDINALITY AS q(path, up_to, ord)
	CROSS JOIN LATERAL (
		SELECT * FROM ` + Table + ` j
		WHERE j.path = q.path
			AND j.storage = $1 AND j.commit_lsn <= q.up_to
		ORDER BY j.id DESC
		LIMIT 1) j`

// pruneSQL deletes at most $3 entries of storage $1 written before $2.
// The inner query finds them through the BRIN index on at; the table has
// no primary key, so the outer one deletes by ctid (a TID scan). Entries
// are never updated, so a ctid found is the entry deleted; the conditions
// are repeated so that this holds whatever runs concurrently.
const pruneSQL = `DELETE FROM ` + Table + `
	WHERE ctid = ANY (ARRAY(SELECT ctid FROM ` + Table + ` WHERE storage = $1 AND at < $2 LIMIT $3))
		AND storage = $1 AND at < $2`

// horizonSQL finds the highest commit LSN of the entries written in the
// last $1 seconds, through the BRIN index on at: the newest pages only.
const horizonSQL = `SELECT coalesce(max(commit_lsn)::text, '0/0') FROM ` + Table + ` WHERE at >= now() - make_interval(secs => $1)`

// Horizon implements cdccleaner.JournalHorizon.
func (j *Journal) Horizon(ctx context.Context, window time.Duration) (cdccleaner.LSN, error) {
	var s string
	if err := j.pool.QueryRow(ctx, horizonSQL, window.Seconds()).Scan(&s); err != nil {
		return 0, fmt.Errorf("read the journal's recent horizon: %w", err)
	}
	return cdccleaner.ParseLSN(s)
}

// Journal implements cdccleaner.Journal on a connection pool.
type Journal struct {
	pool *pgxpool.Pool
}

var _ cdccleaner.Journal = (*Journal)(nil)

// New returns a Journal writing and reading through pool.
func New(pool *pgxpool.Pool) *Journal { return &Journal{pool: pool} }

// insertSQL inserts one row per element of its arrays: one statement, sent
// with its parameters in one round trip (a COPY needs two, and a goroutine
// feeding a pipe; `make bench` drained no faster with it).
var insertSQL = `INSERT INTO ` + Table + ` (` + strings.Join(columns, ", ") + `)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[]::pg_lsn[], $8::timestamptz[], $9::text[])`

// Write inserts entries in one statement; it returns nil only once they
// are committed. Paths, locations, sources and details are stored as
// ledger.Printable makes them (a NUL byte becomes U+FFFD). Writing an
// entry again (a replay after a crash) adds a row the readers treat as the
// newest of equal ones, which changes no answer. An entry with an unknown
// event is refused before anything is written.
func (j *Journal) Write(ctx context.Context, entries []cdccleaner.JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	storage, path, event, location, source, detail := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	xid := make([]*int64, n) // NULL when unknown
	lsn := make([]string, n)
	commitTime := make([]*time.Time, n) // NULL when unknown
	for i, e := range entries {
		if !knownEvent(e.Event) {
			return fmt.Errorf("write %d journal entries: entry %d (%s %q): unknown event %q", n, i, e.Storage, ledger.Printable(e.Path), e.Event)
		}
		storage[i], path[i], event[i] = e.Storage, ledger.Printable(e.Path), e.Event
		location[i], source[i], detail[i] = ledger.Printable(e.Location), ledger.Printable(e.Source), ledger.Printable(e.Detail)
		if e.Xid != 0 {
			x := int64(e.Xid)
			xid[i] = &x
		}
		lsn[i] = e.CommitLSN.String()
		if !e.CommitTime.IsZero() {
			commitTime[i] = &entries[i].CommitTime
		}
	}
	tag, err := j.pool.Exec(ctx, insertSQL, storage, path, event, location, source, xid, lsn, commitTime, detail)
	if err != nil {
		return fmt.Errorf("write %d journal entries: %w", n, err)
	}
	if tag.RowsAffected() != int64(n) {
		return fmt.Errorf("write %d journal entries: the server inserted %d", n, tag.RowsAffected())
	}
	return nil
}

// Latest returns, for each paths[i] of storage, its newest entry whose
// commit LSN is at or before upTo[i], among equal LSNs the one written
// last; a path the journal knows nothing of (up to its bound) is not in
// the map. It asks in one query, whatever the number of paths. A path
// given more than once is answered for its highest bound. Keys are the
// paths as given, and so is each entry's Path, although the table holds
// ledger.Printable(path). len(upTo) must be len(paths).
func (j *Journal) Latest(ctx context.Context, storage string, paths []string, upTo []cdccleaner.LSN) (map[string]cdccleaner.JournalEntry, error) {
	if len(paths) != len(upTo) {
		return nil, fmt.Errorf("look up %d paths in the journal: %d LSN bounds, want one per path", len(paths), len(upTo))
	}
	out := make(map[string]cdccleaner.JournalEntry)
	if len(paths) == 0 {
		return out, nil
	}
	// Each path once, with its highest bound.
	index := make(map[string]int, len(paths))
	var keys []string
	var bounds []cdccleaner.LSN
	for i, p := range paths {
		k, ok := index[p]
		if !ok {
			index[p] = len(keys)
			keys = append(keys, p)
			bounds = append(bounds, upTo[i])
			continue
		}
		bounds[k] = max(bounds[k], upTo[i])
	}
	printable := make([]string, len(keys))
	lsns := make([]string, len(keys))
	for i, p := range keys {
		printable[i] = ledger.Printable(p)
		lsns[i] = bounds[i].String()
	}
	fail := func(err error) error {
		return fmt.Errorf("look up %d paths of storage %q in the journal: %w", len(keys), storage, err)
	}
	rows, err := j.pool.Query(ctx, latestSQL, storage, printable, lsns)
	if err != nil {
		return nil, fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		// Rows come in no particular order; ord says which path each
		// answers.
		var ord int64
		var e cdccleaner.JournalEntry
		if err := scanEntry(rows, &e, &ord); err != nil {
			return nil, fail(err)
		}
		if ord < 1 || ord > int64(len(keys)) {
			return nil, fail(fmt.Errorf("the server answered for path %d", ord))
		}
		e.Path = keys[ord-1]
		out[e.Path] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err)
	}
	return out, nil
}

// scanEntry scans selectColumns into e; with ord, a leading ordinal too.
func scanEntry(row pgx.Row, e *cdccleaner.JournalEntry, ord *int64) error {
	var (
		xid        *int64
		lsn        string
		commitTime *time.Time
	)
	dest := []any{&e.Storage, &e.Path, &e.Event, &e.Location, &e.Source, &xid, &lsn, &commitTime, &e.Detail, &e.At}
	if ord != nil {
		dest = append([]any{ord}, dest...)
	}
	if err := row.Scan(dest...); err != nil {
		return err
	}
	if xid != nil {
		e.Xid = uint32(*xid)
	}
	if commitTime != nil {
		e.CommitTime = *commitTime
	}
	l, err := cdccleaner.ParseLSN(lsn)
	if err != nil {
		return err
	}
	e.CommitLSN = l
	return nil
}

// Prune deletes the entries of storage written before before, at most batch
// per statement, each statement its own transaction, so that a large
// prune never holds locks or a snapshot for long; it returns how many it
// deleted, also when ctx ends or a statement fails part way.
func (j *Journal) Prune(ctx context.Context, storage string, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		return 0, fmt.Errorf("prune the journal of storage %q: batch size %d, want at least 1", storage, batch)
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("prune the journal of storage %q after %d entries: %w", storage, total, err)
		}
		tag, err := j.pool.Exec(ctx, pruneSQL, storage, before, batch)
		if err != nil {
			return total, fmt.Errorf("prune the journal of storage %q after %d entries: %w", storage, total, err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// knownEvent reports whether event is one of the cdccleaner.Journal*
// events, which the table's CHECK allows.
func knownEvent(event string) bool {
	switch event {
	case cdccleaner.JournalTrashed, cdccleaner.JournalDeleted, cdccleaner.JournalAbsent,
		cdccleaner.JournalRestored, cdccleaner.JournalOccupied, cdccleaner.JournalDangling:
		return true
	}
	return false
}

// RunPruner deletes the entries of storage older than keep, at start and
// then every interval, until ctx ends. Errors are logged and retried at the
// next round.
func (j *Journal) RunPruner(ctx context.Context, storage string, keep, interval time.Duration, log zerolog.Logger) {
	periodic.Run(ctx, 0, interval, func(ctx context.Context) {
		n, err := j.Prune(ctx, storage, time.Now().Add(-keep), 10_000)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn().Err(err).Msg("prune the journal")
		case n > 0:
			log.Info().Int64("pruned", n).Dur("kept_for", keep).Msg("pruned journal entries past their retention")
		}
	})
}
