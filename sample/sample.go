// Package sample tests a column's mapping to its storage on a bounded
// random sample (promise 8 of the design): it reads some non-empty values of
// the column, turns them into paths as the decoder would, and asks the
// storage whether those files exist. A column whose sampled paths are
// mostly absent maps to the storage wrongly (a wrong root or prefix, or a
// layout that is not "the value is the path"), and then nothing may be
// deleted in bulk on the strength of it: check reports it, scan refuses.
package sample

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/decoder"
)

// Bounds of one column's sample.
const (
	// Values is how many non-empty values are sampled from a column.
	Values = 100
	// MaxPaths is how many paths of those values are looked up in the
	// storage (an array or JSON value can name many).
	MaxPaths = 200
	// Concurrency is how many lookups run at once.
	Concurrency = 8
	// MinPaths is how many paths a verdict needs: fewer say nothing.
	MinPaths = 5
	// WrongBelow is the share of sampled paths that must exist for the
	// mapping to look right; below it, the mapping is wrong.
	WrongBelow = 0.5
	// fullScanRows is the table size up to which values are drawn from
	// the whole table; a larger one is read through TABLESAMPLE SYSTEM.
	fullScanRows = 100_000
)

// Querier is what Values needs of a connection.
type Querier interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Result is what the sample of one column found.
type Result struct {
	Column cdccleaner.Column
	// Values is how many non-empty values were sampled, Paths how many
	// valid paths they named and were looked up, Present how many of those
	// exist in the storage.
	Values, Paths, Present int
	// Invalid counts the values' paths that ValidatePath refuses (a URL,
	// "/media/a.jpg"): they name no file as they are.
	Invalid int
	// Absent holds up to three sampled paths that do not exist.
	Absent []string
	// Example is a sampled value, for messages.
	Example string
}

// Judged reports whether the sample is large enough to say anything.
func (r Result) Judged() bool { return r.Paths >= MinPaths }

// Wrong reports whether the sampled paths are mostly absent: the column's
// values do not map to files of the storage as configured.
func (r Result) Wrong() bool {
	return r.Judged() && float64(r.Present) < WrongBelow*float64(r.Paths)
}

// NoPaths reports whether enough values were sampled but none of them
// named a path (a json_path that finds nothing in the documents, say): the
// mapping cannot be judged, and may be wrong.
func (r Result) NoPaths() bool { return r.Values >= MinPaths && r.Paths == 0 && r.Invalid == 0 }

// Doubtful reports whether the few paths the sample found all failed to
// exist: too few to call the mapping wrong, worth a warning.
func (r Result) Doubtful() bool { return !r.Judged() && r.Paths > 0 && r.Present == 0 }

// Column samples c (a column inspection described: its Type is set) and
// looks its paths up in st.
func Column(ctx context.Context, q Querier, st cdccleaner.Statter, c cdccleaner.Column) (Result, error) {
	vals, err := ReadValues(ctx, q, c, Values)
	if err != nil {
		return Result{Column: c}, err
	}
	return Probe(ctx, st, c, vals)
}

// Probe looks up in st the paths that the sampled values vals of c name.
func Probe(ctx context.Context, st cdccleaner.Statter, c cdccleaner.Column, vals []string) (Result, error) {
	r := Result{Column: c, Values: len(vals)}
	var paths []string
	seen := map[string]bool{}
	for _, v := range vals {
		if r.Example == "" {
			r.Example = v
		}
		ps, err := decoder.Paths(c.Type, c.JSONPath, []byte(v))
		if err != nil {
			r.Invalid++ // a value the decoder cannot read names no file either
			continue
		}
		for _, p := range ps {
			p, ok := c.Strip(p)
			if !ok {
				r.Invalid++ // none of strip_prefix: no path of the storage
				continue
			}
			switch {
			case seen[p]:
			case cdccleaner.ValidatePath(p) != nil:
				r.Invalid++
			case len(paths) < MaxPaths:
				paths = append(paths, p)
			}
			seen[p] = true
		}
	}
	r.Paths = len(paths)
	present, err := exist(ctx, st, paths)
	if err != nil {
		return r, err
	}
	for _, p := range paths {
		switch {
		case present[p]:
			r.Present++
		case len(r.Absent) < 3:
			r.Absent = append(r.Absent, p)
		}
	}
	return r, nil
}

// exist stats paths in st, Concurrency at a time, and returns those that
// exist. Any error but "does not exist" is returned: an unanswered lookup
// must not count as an absent file.
func exist(ctx context.Context, st cdccleaner.Statter, paths []string) (map[string]bool, error) {
	out := make(map[string]bool, len(paths))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, Concurrency)
	var wg sync.WaitGroup
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := st.Stat(p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[p] = true
			case errors.Is(err, fs.ErrNotExist):
			case firstErr == nil:
				firstErr = fmt.Errorf("look up %q in the storage: %w", p, err)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

// ReadValues returns up to n non-empty values of c in their text form
// (for a template, the paths it renders), of rows its match holds for,
// drawn at random: from the whole table when it is small, else from a
// TABLESAMPLE SYSTEM of its pages sized for n values (widened when the
// column is mostly empty). It reads in a transaction of its own with a
// statement timeout, so a huge table costs seconds at most.
func ReadValues(ctx context.Context, q Querier, c cdccleaner.Column, n int) ([]string, error) {
	tx, err := q.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 10000"); err != nil {
		return nil, err
	}
	rows, err := estimateRows(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	tbl := pgx.Identifier{c.Schema, c.Table}.Sanitize()
	col := "t." + pgx.Identifier{c.Name}.Sanitize()
	where := nonEmpty(c, col)
	var cols []string // a template's columns
	if c.Template != nil {
		cols = c.Template.Columns()
		exprs, conds := make([]string, len(cols)), make([]string, len(cols))
		for i, name := range cols {
			e := "t." + pgx.Identifier{name}.Sanitize() + "::text"
			exprs[i], conds[i] = e, e+" <> ''"
		}
		col, where = "ARRAY["+strings.Join(exprs, ", ")+"]", strings.Join(conds, " AND ")
	}
	where += MatchSQL(c, "t")
	pct := 100.0
	if rows > fullScanRows {
		pct = math.Max(100*20*float64(n)/rows, 0.001)
	}
	for {
		sampling := ""
		if pct < 100 {
			sampling = fmt.Sprintf(" TABLESAMPLE SYSTEM (%g)", pct)
		}
		q := fmt.Sprintf("SELECT %s::text FROM %s AS t%s WHERE %s ORDER BY random() LIMIT $1", col, tbl, sampling, where)
		if cols != nil {
			q = fmt.Sprintf("SELECT %s FROM %s AS t%s WHERE %s ORDER BY random() LIMIT $1", col, tbl, sampling, where)
		}
		vals, err := collect(ctx, tx, q, n, c.Template)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", c.Source(), err)
		}
		if len(vals) >= n || pct >= 100 {
			return vals, nil
		}
		pct = math.Min(pct*10, 100)
	}
}

// nonEmpty is the condition under which a value of c (the SQL expression
// col) can name a file: not NULL, not the empty string, not an empty array
// or an empty JSON document.
func nonEmpty(c cdccleaner.Column, col string) string {
	switch c.Type.Kind {
	case cdccleaner.KindArray:
		return fmt.Sprintf("cardinality(%s) > 0", col)
	case cdccleaner.KindJSON:
		return fmt.Sprintf("%s IS NOT NULL AND %s::text NOT IN ('{}', '[]', 'null', '\"\"')", col, col)
	}
	return fmt.Sprintf("%s::text <> ''", col)
}

// collect runs q, which yields one text value a row, or with tpl set an
// array of the template's column values that collect renders.
func collect(ctx context.Context, tx pgx.Tx, q string, n int, tpl *cdccleaner.Template) ([]string, error) {
	rows, err := tx.Query(ctx, q, n)
	if err != nil {
		return nil, err
	}
	if tpl == nil {
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	cols := tpl.Columns()
	vals, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vals {
		p, ok := tpl.Render(func(col string) (string, bool) {
			i := slices.Index(cols, col)
			return v[i], i >= 0
		})
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// MatchSQL returns the SQL condition of c's match on the table aliased
// alias, " AND ..." for each column (compared as text, as the decoder
// compares it), or "" without match.
func MatchSQL(c cdccleaner.Column, alias string) string {
	var b strings.Builder
	for _, m := range c.Match {
		fmt.Fprintf(&b, " AND %s.%s::text = %s", alias, pgx.Identifier{m.Column}.Sanitize(), cdccleaner.QuoteLiteral(m.Value))
	}
	return b.String()
}

// estimateRows is the planner's estimate of the rows of c's table with
// every table that inherits from it (partitions, and inheritance children,
// which TABLESAMPLE and a plain SELECT read too); a table never analyzed
// is estimated from its size on disk. A role that may not read
// pg_inherits gets the estimate of pg_partition_tree, which follows
// partitions only.
func estimateRows(ctx context.Context, tx pgx.Tx, c cdccleaner.Column) (float64, error) {
	const rowsOf = `coalesce(sum(CASE WHEN p.reltuples >= 0 THEN p.reltuples ELSE pg_relation_size(p.oid) / 8192 * 50 END), 0)::float8`
	var rows float64
	if _, err := tx.Exec(ctx, "SAVEPOINT estimate"); err != nil {
		return 0, fmt.Errorf("estimate the rows of %s.%s: %w", c.Schema, c.Table, err)
	}
	err := tx.QueryRow(ctx, `WITH RECURSIVE tree(oid) AS (
			SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2
			UNION
			SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
		SELECT `+rowsOf+` FROM tree JOIN pg_class p ON p.oid = tree.oid WHERE p.relkind IN ('r', 'm')`, c.Schema, c.Table).Scan(&rows)
	if err == nil {
		return rows, nil
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT estimate"); rerr != nil {
		return 0, fmt.Errorf("estimate the rows of %s.%s: %w", c.Schema, c.Table, err)
	}
	err = tx.QueryRow(ctx, `SELECT `+rowsOf+`
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		CROSS JOIN LATERAL pg_partition_tree(c.oid) AS pt
		JOIN pg_class p ON p.oid = pt.relid
		WHERE n.nspname = $1 AND c.relname = $2 AND pt.isleaf`, c.Schema, c.Table).Scan(&rows)
	if err != nil {
		return 0, fmt.Errorf("estimate the rows of %s.%s: %w", c.Schema, c.Table, err)
	}
	return rows, nil
}
