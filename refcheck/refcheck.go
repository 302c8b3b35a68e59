package refcheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Checker implements cdccleaner.ReferenceChecker with one query per batch
// per storage, a UNION ALL over every column mapped to that storage.
type Checker struct {
	pool    *pgxpool.Pool
	resolve func(ctx context.Context) ([]cdccleaner.Column, error)
	log     zerolog.Logger

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

// Logger gives the Checker a logger for what it decides without asking the
// database: a candidate that a template could not map back completely
// (see MaxAssignments) is kept, at warn.
func Logger(l zerolog.Logger) Option {
	return func(c *Checker) { c.log = l }
}

// MaxAssignments bounds the ways Referenced maps one value back through a
// template entry's path (cdccleaner.Template.Reverse) to the values of its
// columns. A candidate with more ways, or whose search does not finish, is
// referenced for that entry without a query (promise 2: a doubt keeps the
// file), and logged at warn. Templates whose columns are separated by
// literal text that the values do not hold ("{key[0:2]}/{key[2:4]}/{key}",
// "{bucket_id}/{name}" with one "/" too many at most) stay far below it.
const MaxAssignments = 64

// query is the reference query of one storage. Its $1 is the candidate
// paths; binds fill the parameters after it, in order.
type query struct {
	sql   string
	binds []bind
}

// bind fills parameters of one column's part of a query for a batch of
// candidate paths, in the order of their numbers, and returns the paths it
// finds referenced without a query (a template that could not map them
// back completely).
type bind struct {
	source string // the column, for logs
	fill   func(paths []string) (args []any, kept []string)
}

var _ cdccleaner.ReferenceChecker = (*Checker)(nil)

// New prepares the queries for columns. Every storage that candidates may
// name must have at least one column.
func New(pool *pgxpool.Pool, columns []cdccleaner.Column, opts ...Option) (*Checker, error) {
	queries, err := buildQueries(columns)
	if err != nil {
		return nil, err
	}
	ch := &Checker{pool: pool, columns: slices.Clone(columns), queries: queries, log: zerolog.Nop()}
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

// SQL returns the query used for storage, for logs and `check`. Its $1 is
// the batch of candidate paths; the parameters after it, which template
// and strip_prefix entries add, are arrays that Referenced computes from
// the batch: positions in $1 (int[]) with the values searched for them
// (text[]).
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
// u, j and c for the function results, with named columns, f and s where
// a column's found values are mapped back to candidates) and every column
// and function result is qualified by one, so a user column named like an
// alias (or like a result column: path, v) can neither make a reference
// ambiguous nor capture it. PostgreSQL resolves a qualified name a.b to
// the relation a wherever one is in scope, before it would try a column a.
//
// Each column gives one or two parts of a UNION ALL that yields the
// candidates it references:
//
//   - a column whose values are paths is searched for $1 itself (an index
//     on the column serves = ANY, a GIN index && and @>);
//   - with strip_prefix, for each spelling of a candidate that gives it
//     back (cdccleaner.Column.Spellings and Strip, in Go), and each found
//     spelling is mapped back to its candidate's position in $1;
//   - a template entry (path) for the values of its columns that render a
//     candidate (cdccleaner.Template.Reverse), compared as text in an
//     EXISTS, so that an index on those columns serves it; a candidate
//     that the template cannot render has no values and is referenced by
//     nothing of the entry.
//
// match adds "AND t.col::text = 'value'" for each of its columns.
func buildQuery(cols []cdccleaner.Column) (query, error) {
	var q query
	var parts []string
	next := 2 // $1 is the candidates
	param := func() int { next++; return next - 1 }
	for _, c := range cols {
		if c.Template != nil {
			part, b := templatePart(c, param)
			parts = append(parts, part)
			q.binds = append(q.binds, b)
			continue
		}
		if len(c.StripPrefix) == 0 {
			found, jsonDocs, err := columnParts(c, "$1", param)
			if err != nil {
				return q, err
			}
			parts = append(parts, found...)
			if jsonDocs > 0 {
				probe := c.JSONPath
				q.binds = append(q.binds, bind{source: c.Source(), fill: func(paths []string) ([]any, []string) {
					return []any{containing(probe, paths)}, nil
				}})
			}
			continue
		}
		// The spellings searched and, for each, the position in $1 of
		// the candidate it gives back.
		values := param()
		found, jsonDocs, err := columnParts(c, fmt.Sprintf("$%d", values), param)
		if err != nil {
			return q, err
		}
		index := param()
		parts = append(parts, fmt.Sprintf("SELECT ($1::text[])[s.i] FROM (%s) AS f(v) JOIN unnest($%d::text[], $%d::int[]) AS s(v, i) ON s.v = f.v",
			strings.Join(found, "\nUNION ALL\n"), values, index))
		col := c
		q.binds = append(q.binds, bind{source: c.Source(), fill: func(paths []string) ([]any, []string) {
			vals, idx := spellings(col, paths)
			if jsonDocs > 0 {
				return []any{vals, containing(col.JSONPath, vals), idx}, nil
			}
			return []any{vals, idx}, nil
		}})
	}
	q.sql = strings.Join(parts, "\nUNION ALL\n")
	return q, nil
}

// columnParts returns the parts of a reference query that yield the values
// of c (a column whose values are paths) found in the parameter vals, a
// text[], with the number of the parameter the containment documents of a
// jsonb column take (0: none), taken from param.
func columnParts(c cdccleaner.Column, vals string, param func() int) (parts []string, jsonDocs int, err error) {
	tbl := pgx.Identifier{c.Schema, c.Table}.Sanitize()
	col := "t." + pgx.Identifier{c.Name}.Sanitize()
	match := matchSQL(c)
	switch c.Type.Kind {
	case cdccleaner.KindText:
		return []string{fmt.Sprintf("SELECT %s::text FROM %s AS t WHERE %s = ANY(%s::text[])%s", col, tbl, col, vals, match)}, 0, nil
	case cdccleaner.KindArray:
		return []string{fmt.Sprintf("SELECT u.path FROM %s AS t CROSS JOIN LATERAL unnest(%s::text[]) AS u(path) WHERE %s::text[] && %s::text[] AND u.path = ANY(%s::text[])%s", tbl, col, col, vals, vals, match)}, 0, nil
	case cdccleaner.KindJSON:
		probe := c.JSONPath
		if c.Type.JSONText() {
			// json: no index can help; a value jsonb refuses must not
			// fail the query, and keeps any path its text mentions.
			// In the second part c.path is the candidate of the outer
			// query: inside EXISTS only t is in scope besides it.
			return []string{
				fmt.Sprintf("SELECT j.v #>> '{}' FROM %s AS t CROSS JOIN LATERAL jsonb_path_query(cdc_cleaner.try_jsonb(%s), %s) AS j(v) WHERE %s IS NOT NULL AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY(%s::text[])%s",
					tbl, col, cdccleaner.QuoteLiteral(probe.SQL()), col, vals, match),
				fmt.Sprintf("SELECT c.path FROM unnest(%s::text[]) AS c(path) WHERE EXISTS (SELECT 1 FROM %s AS t WHERE %s IS NOT NULL AND cdc_cleaner.try_jsonb(%s) IS NULL AND (strpos(%s::text, c.path) > 0 OR strpos(replace(%s::text, '\\/', '/'), c.path) > 0)%s)",
					vals, tbl, col, col, col, col, match),
			}, 0, nil
		}
		// The containment test (@>) can use a GIN index on the column
		// (jsonb_path_ops); the jsonpath then says which paths matched.
		n := param()
		return []string{fmt.Sprintf("SELECT j.v #>> '{}' FROM %s AS t CROSS JOIN LATERAL jsonb_path_query(%s, %s) AS j(v) WHERE %s @> ANY($%d::jsonb[]) AND jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' = ANY(%s::text[])%s",
			tbl, col, cdccleaner.QuoteLiteral(probe.SQL()), col, n, vals, match)}, n, nil
	}
	return nil, 0, fmt.Errorf("%s.%s: type %s cannot hold paths", tbl, pgx.Identifier{c.Name}.Sanitize(), c.Type.Kind)
}

// templatePart returns the part of a reference query that yields the
// candidates the template entry c references, and what fills its
// parameters: for each way of rendering a candidate (or, with
// strip_prefix, one of its spellings), its position in $1 and the value of
// each of the template's columns. The columns are compared as text, as the
// decoder renders them: an index on a text or varchar column serves the
// comparison; the text of a character(n) value has no trailing spaces (no
// plain index on such a column serves it, one on (col::text) does).
func templatePart(c cdccleaner.Column, param func() int) (string, bind) {
	tbl := pgx.Identifier{c.Schema, c.Table}.Sanitize()
	tcols := c.Template.Columns()
	index := param()
	params := []string{fmt.Sprintf("$%d::int[]", index)}
	names := []string{"i"}
	var conds []string
	for k, col := range tcols {
		params = append(params, fmt.Sprintf("$%d::text[]", param()))
		v := fmt.Sprintf("v%d", k+1)
		names = append(names, v)
		conds = append(conds, fmt.Sprintf("t.%s::text = c.%s", pgx.Identifier{col}.Sanitize(), v))
	}
	sql := fmt.Sprintf("SELECT ($1::text[])[c.i] FROM unnest(%s) AS c(%s) WHERE EXISTS (SELECT 1 FROM %s AS t WHERE %s%s)",
		strings.Join(params, ", "), strings.Join(names, ", "), tbl, strings.Join(conds, " AND "), matchSQL(c))
	fill := func(paths []string) ([]any, []string) {
		idx := []int32{}
		vals := make([][]string, len(tcols))
		for k := range vals {
			vals[k] = []string{}
		}
		var kept []string
		for n, p := range paths {
			for _, s := range lookedFor(c, p) {
				found, complete := c.Template.Reverse(s, MaxAssignments)
				if !complete {
					kept = append(kept, p)
					break
				}
				for _, a := range found {
					idx = append(idx, int32(n+1))
					for k, col := range tcols {
						vals[k] = append(vals[k], a[col])
					}
				}
			}
		}
		args := []any{idx}
		for _, v := range vals {
			args = append(args, v)
		}
		return args, kept
	}
	return sql, bind{source: c.Source(), fill: fill}
}

// matchSQL returns the conditions of c's match on the row t, each
// " AND t.col::text = 'value'": the column's text, as the decoder compares
// it (a character(n) value without its trailing spaces).
func matchSQL(c cdccleaner.Column) string {
	var b strings.Builder
	for _, m := range c.Match {
		fmt.Fprintf(&b, " AND t.%s::text = %s", pgx.Identifier{m.Column}.Sanitize(), cdccleaner.QuoteLiteral(m.Value))
	}
	return b.String()
}

// spellings returns the values of column c (with strip_prefix) that keep
// one of paths (lookedFor), each with the position of its path in paths,
// from 1.
func spellings(c cdccleaner.Column, paths []string) (vals []string, idx []int32) {
	vals, idx = []string{}, []int32{}
	for n, p := range paths {
		for _, s := range lookedFor(c, p) {
			vals = append(vals, s)
			idx = append(idx, int32(n+1))
		}
	}
	return vals, idx
}

// lookedFor returns the values of c that keep path p: each prefix of
// strip_prefix followed by p, unless that value gives another path (one
// prefix begins another), and p itself. By the contract a value without
// any prefix is no path of the storage, and is never deleted; but an
// application that stores URLs now and kept older rows' values as plain
// paths references the same file both ways, and a reference check that
// ignored the plain value would delete a file a row still names. Keeping
// it costs, at worst, a file kept that a row names the old way.
func lookedFor(c cdccleaner.Column, p string) []string {
	var out []string
	for _, s := range c.Spellings(p) {
		if got, ok := c.Strip(s); ok && got == p {
			out = append(out, s)
		}
	}
	if len(c.StripPrefix) > 0 && p != "" && !slices.Contains(out, p) {
		out = append(out, p)
	}
	return out
}

// containing returns, for each value, the jsonb document that holds it at
// probe, for a containment test.
func containing(probe cdccleaner.JSONPath, values []string) []string {
	docs := make([]string, len(values))
	for i, v := range values {
		docs[i] = probe.Containing(v)
	}
	return docs
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
	var kept []string
	for _, b := range q.binds {
		a, k := b.fill(paths)
		args = append(args, a...)
		if len(k) > 0 {
			c.log.Warn().Str("storage", storage).Str("column", b.source).Int("paths", len(k)).Str("example", k[0]).
				Msgf("the path template maps these paths back to more than %d sets of column values, or to too many to search: kept as referenced without a query", MaxAssignments)
			kept = append(kept, k...)
		}
	}
	rows, err := c.pool.Query(ctx, q.sql, args...)
	if err != nil {
		return nil, fmt.Errorf("check %d paths of storage %q for references: %w", len(paths), storage, err)
	}
	hits, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, fmt.Errorf("check %d paths of storage %q for references: %w", len(paths), storage, err)
	}
	out := make(map[string]bool, len(hits)+len(kept))
	for _, p := range kept {
		out[p] = true
	}
	for _, h := range hits {
		if h != nil {
			out[*h] = true
		}
	}
	return out, nil
}
