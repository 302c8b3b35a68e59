package discover

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/catalog"
	"github.com/cdc-cleaner/cdc-cleaner/sample"
)

// Bounds of the database reads.
const (
	// ProbeTimeout bounds one read of a table's probe: a table that takes
	// longer is noted and left out.
	ProbeTimeout = 5000 // milliseconds
	// fullScanRows is the table size up to which a probe reads the whole
	// table (as sample.ReadValues does); a larger one is read through
	// TABLESAMPLE SYSTEM.
	fullScanRows = 100_000
)

// Querier is what DB needs of a database: a pool, since the search reads
// several tables at once.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// DB is the Source of a PostgreSQL database.
type DB struct{ q Querier }

var _ Source = (*DB)(nil)

// NewDB returns the Source that reads the database through q.
func NewDB(q Querier) *DB { return &DB{q: q} }

// candidatesSQL lists, in one query, the columns of the user tables whose
// type could hold paths, and whether the role may not read them: string,
// array or user-defined category (json and jsonb are "U"; a domain has
// its base type's category), which catalog.TypeKinds then classifies
// exactly. Partitions
// are left out (their rows are read through the partitioned table), and
// so are the system schemas, temporary tables and the cleaner's own
// schema. Rows is the planner's estimate, summed over the table and what
// inherits from it (partitions, children), read from the catalog alone:
// functions that open tables (pg_relation_size, pg_partition_tree) would
// wait behind an ALTER TABLE's lock.
const candidatesSQL = `WITH RECURSIVE t AS (
	SELECT c.oid, n.nspname, c.relname, c.relkind
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
		AND n.nspname NOT IN ('information_schema', 'cdc_cleaner') AND n.nspname NOT LIKE 'pg\_%'
), tree AS (
	SELECT t.oid AS root, t.oid AS rel FROM t
	UNION ALL
	SELECT tree.root, i.inhrelid FROM tree JOIN pg_inherits i ON i.inhparent = tree.rel
), est AS (
	SELECT tree.root AS oid, sum(CASE WHEN p.reltuples >= 0 THEN p.reltuples ELSE p.relpages * 100 END)::float8 AS rows
	FROM tree JOIN pg_class p ON p.oid = tree.rel
	WHERE p.relkind = 'r'
	GROUP BY tree.root
)
SELECT t.nspname::text, t.relname::text, a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod),
	t.relkind = 'p', coalesce(est.rows, 0), NOT has_column_privilege(t.oid, a.attnum, 'SELECT')
FROM t
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN est ON est.oid = t.oid
WHERE ty.typcategory IN ('S', 'A', 'U')
ORDER BY t.nspname, t.relname, a.attnum`

// Candidates implements Source.
func (db *DB) Candidates(ctx context.Context) ([]Candidate, error) {
	rows, err := db.q.Query(ctx, candidatesSQL)
	if err != nil {
		return nil, fmt.Errorf("list the columns of the database: %w", err)
	}
	var all []Candidate
	var oids []uint32
	seen := map[uint32]bool{}
	for rows.Next() {
		var c Candidate
		if err := rows.Scan(&c.Schema, &c.Table, &c.Name, &c.TypeOID, &c.TypeName, &c.Partitioned, &c.Rows, &c.Unreadable); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list the columns of the database: %w", err)
		}
		all = append(all, c)
		if !seen[c.TypeOID] {
			seen[c.TypeOID] = true
			oids = append(oids, c.TypeOID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the columns of the database: %w", err)
	}
	kinds, err := catalog.TypeKinds(ctx, db.q, oids)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		c.Type = kinds[c.TypeOID]
		if c.Type.Kind != cdccleaner.KindNone {
			out = append(out, c)
		}
	}
	return out, nil
}

// Probe implements Source: one statement reads every column's values, in
// a transaction of its own with a statement timeout; a big table is read
// through TABLESAMPLE SYSTEM sized for 20 rows a value, widened for the
// columns that came back short of MinPresent values.
func (db *DB) Probe(ctx context.Context, cols []Candidate, n int) ([][]string, error) {
	out := make([][]string, len(cols))
	if len(cols) == 0 {
		return out, nil
	}
	pct := 100.0
	if rows := cols[0].Rows; rows > fullScanRows {
		pct = math.Max(100*20*float64(n)/rows, 0.001)
	}
	todo := make([]int, len(cols))
	for i := range cols {
		todo[i] = i
	}
	for {
		if err := db.probeOnce(ctx, cols, todo, n, pct, out); err != nil {
			return out, err
		}
		if pct >= 100 {
			return out, nil
		}
		short := todo[:0]
		for _, i := range todo {
			if len(out[i]) < MinPresent {
				short = append(short, i)
			}
		}
		if todo = short; len(todo) == 0 {
			return out, nil
		}
		pct = math.Min(pct*10, 100)
	}
}

// probeOnce reads up to n values of each column cols[i], i in which, at a
// sampling of pct percent, into out[i].
func (db *DB) probeOnce(ctx context.Context, cols []Candidate, which []int, n int, pct float64, out [][]string) error {
	tbl := pgx.Identifier{cols[0].Schema, cols[0].Table}.Sanitize()
	sampling := ""
	if pct < 100 {
		sampling = fmt.Sprintf(" TABLESAMPLE SYSTEM (%g)", pct)
	}
	parts := make([]string, 0, len(which))
	for _, i := range which {
		c := cols[i]
		col := "t." + pgx.Identifier{c.Name}.Sanitize()
		nonEmpty := col + " IS NOT NULL"
		switch c.Type.Kind {
		case cdccleaner.KindText:
			nonEmpty += " AND " + col + "::text <> ''"
		case cdccleaner.KindArray:
			nonEmpty += " AND cardinality(" + col + ") > 0"
		}
		parts = append(parts, fmt.Sprintf("(SELECT %d, %s::text FROM %s AS t%s WHERE %s ORDER BY random() LIMIT %d)", i, col, tbl, sampling, nonEmpty, n))
	}
	tx, err := db.q.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", ProbeTimeout)); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, strings.Join(parts, "\nUNION ALL\n"))
	if err != nil {
		return fmt.Errorf("read %s: %w", tbl, err)
	}
	fresh := map[int]bool{}
	for rows.Next() {
		var i int
		var v string
		if err := rows.Scan(&i, &v); err != nil {
			rows.Close()
			return fmt.Errorf("read %s: %w", tbl, err)
		}
		if !fresh[i] {
			fresh[i], out[i] = true, out[i][:0]
		}
		out[i] = append(out[i], v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", tbl, err)
	}
	return nil
}

// Sample implements Source through sample.ReadValues.
func (db *DB) Sample(ctx context.Context, c Candidate, n int) ([]string, error) {
	return sample.ReadValues(ctx, db.q, c.Column, n)
}
