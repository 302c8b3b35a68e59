package refcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Kind is how a column holds paths.
type Kind int

const (
	Text  Kind = iota // the value is one path
	Array             // text[] or varchar[]: each element is a path
	JSON              // json or jsonb: string leaves at JSONPath are paths
)

// Column is one column that references files of a storage.
type Column struct {
	Storage  string
	Schema   string // unquoted
	Table    string // unquoted
	Column   string // unquoted
	Kind     Kind
	JSONPath string // dot keys and [*], e.g. "files[*].path"; empty: the whole value
}

// Checker implements cdccleaner.ReferenceChecker with one query per batch
// per storage, a UNION ALL over every column mapped to that storage.
type Checker struct {
	pool    *pgxpool.Pool
	queries map[string]query
}

type query struct {
	sql  string
	json []jsonProbe // one per JSON column, in order of their $n parameters
}

var _ cdccleaner.ReferenceChecker = (*Checker)(nil)

// New prepares the queries for columns. Every storage that candidates may
// name must have at least one column.
func New(pool *pgxpool.Pool, columns []Column) (*Checker, error) {
	byStorage := map[string][]Column{}
	var order []string
	for _, c := range columns {
		if _, ok := byStorage[c.Storage]; !ok {
			order = append(order, c.Storage)
		}
		byStorage[c.Storage] = append(byStorage[c.Storage], c)
	}
	ch := &Checker{pool: pool, queries: map[string]query{}}
	for _, s := range order {
		q, err := buildQuery(byStorage[s])
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", s, err)
		}
		ch.queries[s] = q
	}
	return ch, nil
}

// SQL returns the query used for storage, for logs and `check`.
func (c *Checker) SQL(storage string) string { return c.queries[storage].sql }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func buildQuery(cols []Column) (query, error) {
	var q query
	var parts []string
	for _, c := range cols {
		tbl := quoteIdent(c.Schema) + "." + quoteIdent(c.Table)
		col := quoteIdent(c.Column)
		switch c.Kind {
		case Text:
			parts = append(parts, fmt.Sprintf("SELECT %s::text FROM %s WHERE %s = ANY($1::text[])", col, tbl, col))
		case Array:
			parts = append(parts, fmt.Sprintf("SELECT u FROM %s CROSS JOIN LATERAL unnest(%s::text[]) AS u WHERE %s::text[] && $1::text[] AND u = ANY($1::text[])", tbl, col, col))
		case JSON:
			probe, err := newJSONProbe(c.JSONPath)
			if err != nil {
				return q, fmt.Errorf("%s.%s: %w", tbl, col, err)
			}
			n := len(q.json) + 2
			q.json = append(q.json, probe)
			// The containment test (@>) can use a GIN index on the column;
			// the jsonpath then says which of the paths matched.
			parts = append(parts, fmt.Sprintf("SELECT v #>> '{}' FROM %s CROSS JOIN LATERAL jsonb_path_query(%s::jsonb, %s) AS v WHERE %s::jsonb @> ANY($%d::jsonb[]) AND jsonb_typeof(v) = 'string' AND v #>> '{}' = ANY($1::text[])",
				tbl, col, quoteLiteral(probe.sqlPath), col, n))
		}
	}
	q.sql = strings.Join(parts, "\nUNION ALL\n")
	return q, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Referenced implements cdccleaner.ReferenceChecker.
func (c *Checker) Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	q, ok := c.queries[storage]
	if !ok {
		return nil, fmt.Errorf("no columns reference storage %q", storage)
	}
	args := []any{paths}
	for _, p := range q.json {
		args = append(args, p.docs(paths))
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

// jsonProbe turns a json_path into an SQL/JSON path and, for each candidate
// path, a document that a row containing it would contain (@>).
type jsonProbe struct {
	steps   []jsonStep
	sqlPath string
}

type jsonStep struct {
	key  string
	each bool
}

func newJSONProbe(p string) (jsonProbe, error) {
	var probe jsonProbe
	sqlPath := "$"
	if p != "" {
		for _, part := range strings.Split(p, ".") {
			key := part
			n := 0
			for strings.HasSuffix(key, "[*]") {
				key = strings.TrimSuffix(key, "[*]")
				n++
			}
			if strings.ContainsAny(key, "[]*\"\\") {
				return probe, fmt.Errorf("json_path %q: unsupported segment %q", p, part)
			}
			if key != "" {
				probe.steps = append(probe.steps, jsonStep{key: key})
				sqlPath += `."` + key + `"`
			}
			for ; n > 0; n-- {
				probe.steps = append(probe.steps, jsonStep{each: true})
				sqlPath += "[*]"
			}
		}
	}
	probe.sqlPath = sqlPath
	return probe, nil
}

// docs returns, for each path, the JSON document {"files":[{"path":p}]}
// built from the steps, encoded as text for a jsonb[] parameter.
func (p jsonProbe) docs(paths []string) []string {
	out := make([]string, len(paths))
	for i, path := range paths {
		var v any = path
		for j := len(p.steps) - 1; j >= 0; j-- {
			if p.steps[j].each {
				v = []any{v}
			} else {
				v = map[string]any{p.steps[j].key: v}
			}
		}
		b, _ := json.Marshal(v)
		out[i] = string(b)
	}
	return out
}
