package refcheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Checker implements cdccleaner.ReferenceChecker with one query per batch
// per storage, a UNION ALL over every column mapped to that storage.
type Checker struct {
	pool    *pgxpool.Pool
	resolve func(ctx context.Context) ([]cdccleaner.Column, error)

	mu      sync.RWMutex
	columns []cdccleaner.Column
	queries map[string]query
}

// Option configures a Checker.
type Option func(*Checker)

// Resolve gives the Checker the columns to search as the catalog has them
// now (a column retyped or renamed while running; see
// catalog.Resolver). It is asked before every check, and the queries
// are rebuilt when its answer changes; an error fails the check.
func Resolve(f func(ctx context.Context) ([]cdccleaner.Column, error)) Option {
	return func(c *Checker) { c.resolve = f }
}

type query struct {
	sql  string
	json []cdccleaner.JSONPath // one per JSON column, in order of their $n parameters
}

var _ cdccleaner.ReferenceChecker = (*Checker)(nil)

// New prepares the queries for columns. Every storage that candidates may
// name must have at least one column.
func New(pool *pgxpool.Pool, columns []cdccleaner.Column, opts ...Option) (*Checker, error) {
	queries, err := buildQueries(columns)
	if err != nil {
		return nil, err
	}
	ch := &Checker{pool: pool, columns: slices.Clone(columns), queries: queries}
	for _, o := range opts {
		o(ch)
	}
	return ch, nil
}

// buildQueries builds the query of each storage.
func buildQueries(columns []cdccleaner.Column) (map[string]query, error) {
	byStorage := map[string][]cdccleaner.Column{}
	var order []string
	for _, c := range columns {
		if _, ok := byStorage[c.Storage]; !ok {
			order = append(order, c.Storage)
		}
		byStorage[c.Storage] = append(byStorage[c.Storage], c)
	}
	queries := map[string]query{}
	for _, s := range order {
		q, err := buildQuery(byStorage[s])
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", s, err)
		}
		queries[s] = q
	}
	return queries, nil
}

// SQL returns the query used for storage, for logs and `check`.
func (c *Checker) SQL(storage string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.queries[storage].sql
}

// refresh asks resolve for the columns and rebuilds the queries when they
// changed.
func (c *Checker) refresh(ctx context.Context) error {
	cols, err := c.resolve(ctx)
	if err != nil {
		return err
	}
	c.mu.RLock()
	same := slices.EqualFunc(cols, c.columns, cdccleaner.Column.Equal)
	c.mu.RUnlock()
	if same {
		return nil
	}
	queries, err := buildQueries(cols)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.columns, c.queries = slices.Clone(cols), queries
	c.mu.Unlock()
	return nil
}

// buildQuery returns the reference query over cols. Its own names never
// meet the user's: every FROM item has an alias (t for the user's table,
// u, j and c for the function results, with named columns) and every
// column and function result is qualified by one, so a user column named
// like an alias (or like a result column: path, v) can neither make a
// reference ambiguous nor capture it. PostgreSQL resolves a qualified name
// a.b to the relation a wherever one is in scope, before it would try a
// column a.
func buildQuery(cols []cdccleaner.Column) (query, error) {
	var q query
	var parts []string
	for _, c := range cols {
		tbl := pgx.Identifier{c.Schema, c.Table}.Sanitize()
		col := "t." + pgx.Identifier{c.Name}.Sanitize()
		switch c.Type.Kind {
		case cdccleaner.KindText:
			parts = append(parts, fmt.Sprintf("SELECT %s::text FROM %s AS t WHERE %s = ANY($1::text[])", col, tbl, col))
		case cdccleaner.KindArray:
			parts = append(parts, fmt.Sprintf("SELECT u.path FROM %s AS t CROSS JOIN LATERAL unnest(%s::text[]) AS u(path) WHERE %s::text[] && $1::text[] AND u.path = ANY($1::text[])", tbl, col, col))
		case cdccleaner.KindJSON:
			probe := c.JSONPath
			if c.Type.JSONText() {
				// json: no index can help; a value jsonb refuses must not
				// fail the query, and keeps any path its text mentions.
				// In the second part c.path is the candidate of the outer
				// query: inside EXISTS only t is in scope besides it.
				parts = append(parts,
					fmt.Sprintf("SELECT j.v #>> '{}' FROM %s AS t CROSS JOIN LATERAL jsonb_path_query(cdc_cleaner.try_jsonb(%s), %s) AS j(v) WHERE %s IS NOT NULL AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY($1::text[])",
						tbl, col, cdccleaner.QuoteLiteral(probe.SQL()), col),
					fmt.Sprintf("SELECT c.path FROM unnest($1::text[]) AS c(path) WHERE EXISTS (SELECT 1 FROM %s AS t WHERE %s IS NOT NULL AND cdc_cleaner.try_jsonb(%s) IS NULL AND (strpos(%s::text, c.path) > 0 OR strpos(replace(%s::text, '\\/', '/'), c.path) > 0))",
						tbl, col, col, col, col))
				continue
			}
			// The containment test (@>) can use a GIN index on the column
			// (jsonb_path_ops); the jsonpath then says which paths matched.
			n := len(q.json) + 2
			q.json = append(q.json, probe)
			parts = append(parts, fmt.Sprintf("SELECT j.v #>> '{}' FROM %s AS t CROSS JOIN LATERAL jsonb_path_query(%s, %s) AS j(v) WHERE %s @> ANY($%d::jsonb[]) AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY($1::text[])",
				tbl, col, cdccleaner.QuoteLiteral(probe.SQL()), col, n))
		default:
			return q, fmt.Errorf("%s.%s: type %s cannot hold paths", tbl, pgx.Identifier{c.Name}.Sanitize(), c.Type.Kind)
		}
	}
	q.sql = strings.Join(parts, "\nUNION ALL\n")
	return q, nil
}

// visibleSQL asks whether every 32-bit xid in $1 is visible to a new
// snapshot. The full 64-bit xid is rebuilt from the epoch of the snapshot's
// xmax: an xid above xmax's low half belongs to the previous epoch.
const visibleSQL = `WITH s AS (SELECT pg_current_snapshot() AS snap),
e AS (SELECT snap, pg_snapshot_xmax(snap)::text::bigint AS xmax FROM s)
SELECT coalesce(bool_and(pg_visible_in_snapshot(
	(((e.xmax >> 32) - CASE WHEN x > (e.xmax & 4294967295) THEN 1 ELSE 0 END) << 32 | x)::text::xid8, e.snap)), true)
FROM e, unnest($1::bigint[]) AS x`

// Visible implements cdccleaner.ReferenceChecker.
func (c *Checker) Visible(ctx context.Context, xids []uint32) (bool, error) {
	args := make([]int64, len(xids))
	for i, x := range xids {
		args[i] = int64(x)
	}
	var ok bool
	if err := c.pool.QueryRow(ctx, visibleSQL, args).Scan(&ok); err != nil {
		return false, fmt.Errorf("check that %d transactions are visible: %w", len(xids), err)
	}
	return ok, nil
}

// Referenced implements cdccleaner.ReferenceChecker.
//
// With Resolve, the columns are resolved again first, so that the check
// searches them as they are now.
func (c *Checker) Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	if c.resolve != nil {
		if err := c.refresh(ctx); err != nil {
			return nil, fmt.Errorf("check %d paths of storage %q for references: %w", len(paths), storage, err)
		}
	}
	return c.referenced(ctx, storage, paths)
}

func (c *Checker) referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	c.mu.RLock()
	q, ok := c.queries[storage]
	c.mu.RUnlock()
	if !ok {
		// No watched or protect column maps to this storage (a storage
		// only logical decoding messages name): nothing can reference it.
		return map[string]bool{}, nil
	}
	args := []any{paths}
	for _, jp := range q.json {
		docs := make([]string, len(paths))
		for i, p := range paths {
			docs[i] = jp.Containing(p)
		}
		args = append(args, docs)
	}
	rows, err := c.pool.Query(ctx, q.sql, args...)
	if err != nil {
		return nil, fmt.Errorf("check %d paths of storage %q for references: %w", len(paths), storage, err)
	}
	hits, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, fmt.Errorf("check %d paths of storage %q for references: %w", len(paths), storage, err)
	}
	out := make(map[string]bool, len(hits))
	for _, h := range hits {
		if h != nil {
			out[*h] = true
		}
	}
	return out, nil
}
