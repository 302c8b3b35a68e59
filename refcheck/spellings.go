package refcheck

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Bounds of what Spellings.Read holds in memory for one column.
const (
	// MaxSpellings is how many distinct non-canonical values one column
	// may hold.
	MaxSpellings = 100_000
	// MaxSpellingChars is how long one of them may be, in characters.
	MaxSpellingChars = 4096
	// MaxSpellingBytes is how many bytes they may hold together.
	MaxSpellingBytes = 64 << 20
)

// spellingValuesSQL returns a query yielding, as the text column v, every
// value of c that a reference query reads (a text value, an array
// element, a JSON string leaf at JSONPath) and that matches $1, a regular
// expression (cdccleaner.NonCanonicalPattern). As in buildQuery, every FROM
// item is aliased and every reference qualified. For a json column, the
// rows jsonb refuses (which the reference query searches as text) give
// every string literal of their text, "\/" read as "/".
func spellingValuesSQL(c cdccleaner.Column) (string, error) {
	tbl := pgx.Identifier{c.Schema, c.Table}.Sanitize()
	col := "t." + pgx.Identifier{c.Name}.Sanitize()
	switch c.Type.Kind {
	case cdccleaner.KindText:
		return fmt.Sprintf("SELECT %s::text FROM %s AS t WHERE %s::text ~ $1", col, tbl, col), nil
	case cdccleaner.KindArray:
		return fmt.Sprintf("SELECT u.path FROM %s AS t CROSS JOIN LATERAL unnest(%s::text[]) AS u(path) WHERE u.path ~ $1", tbl, col), nil
	case cdccleaner.KindJSON:
		probe := c.JSONPath
		doc := col
		if c.Type.JSONText() {
			doc = "cdc_cleaner.try_jsonb(" + col + ")"
		}
		q := fmt.Sprintf("SELECT j.v #>> '{}' FROM %s AS t CROSS JOIN LATERAL jsonb_path_query(%s, %s) AS j(v) WHERE %s IS NOT NULL AND jsonb_typeof(j.v) = 'string' AND (j.v #>> '{}') ~ $1",
			tbl, doc, cdccleaner.QuoteLiteral(probe.SQL()), col)
		if c.Type.JSONText() {
			q += fmt.Sprintf("\nUNION ALL\nSELECT replace(m.s[1], '\\/', '/') FROM %s AS t CROSS JOIN LATERAL regexp_matches(%s::text, %s, 'g') AS m(s) WHERE %s IS NOT NULL AND cdc_cleaner.try_jsonb(%s) IS NULL AND replace(m.s[1], '\\/', '/') ~ $1",
				tbl, col, cdccleaner.QuoteLiteral(`"((?:[^"\\]|\\.)*)"`), col, col)
		}
		return q, nil
	}
	return "", fmt.Errorf("%s.%s: type %s cannot hold paths", tbl, pgx.Identifier{c.Name}.Sanitize(), c.Type.Kind)
}

// SpellingCountSQL returns a query that counts the values of c that match
// $1 (as spellingValuesSQL reads them) and gives the least of them, or
// NULL when there is none: count bigint, example text.
func SpellingCountSQL(c cdccleaner.Column) (string, error) {
	q, err := spellingValuesSQL(c)
	if err != nil {
		return "", err
	}
	return "SELECT count(*), min(s.v) FROM (" + q + ") AS s(v)", nil
}

// spellingDistinctSQL returns a query yielding up to MaxSpellings+1
// distinct values of c that match $1, each cut to MaxSpellingChars+1
// characters (so a longer one is seen without being read whole).
func spellingDistinctSQL(c cdccleaner.Column) (string, error) {
	q, err := spellingValuesSQL(c)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("SELECT DISTINCT substr(s.v, 1, %d) FROM (%s) AS s(v) LIMIT %d", MaxSpellingChars+1, q, MaxSpellings+1), nil
}

// Spellings reads the values of a storage's columns that are not canonical
// paths, for a scan that keeps every file they could name.
type Spellings struct {
	pool    *pgxpool.Pool
	columns map[string][]spellingColumn // by storage
}

type spellingColumn struct {
	name string // schema.table.column, for messages
	sql  string
}

// NewSpellings prepares the queries for columns.
func NewSpellings(pool *pgxpool.Pool, columns []cdccleaner.Column) (*Spellings, error) {
	s := &Spellings{pool: pool, columns: map[string][]spellingColumn{}}
	for _, c := range columns {
		q, err := spellingDistinctSQL(c)
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", c.Storage, err)
		}
		s.columns[c.Storage] = append(s.columns[c.Storage], spellingColumn{name: c.Source(), sql: q})
	}
	return s, nil
}

// Read calls fn with each distinct value of each column mapped to storage
// that cdccleaner.NonCanonical reports, one query per column. It fails,
// naming the column and an example, when a column holds more than
// MaxSpellings such values or one longer than MaxSpellingChars characters,
// so that what a caller holds stays bounded.
func (s *Spellings) Read(ctx context.Context, storage string, fn func(column, value string) error) error {
	for _, c := range s.columns[storage] {
		if err := s.readColumn(ctx, c, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spellings) readColumn(ctx context.Context, c spellingColumn, fn func(column, value string) error) error {
	rows, err := s.pool.Query(ctx, c.sql, cdccleaner.NonCanonicalPattern)
	if err != nil {
		return fmt.Errorf("read the values of %s that are not canonical paths: %w", c.name, err)
	}
	defer rows.Close()
	n, size := 0, 0
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("read the values of %s that are not canonical paths: %w", c.name, err)
		}
		n++
		size += len(v)
		switch {
		case n > MaxSpellings:
			return fmt.Errorf("%s holds more than %d distinct values that are not canonical paths (e.g. %s): scan keeps every file such a value could name and will not hold that many in memory; store canonical paths (relative to the storage, without \"./\", \"//\", \"..\", a leading \"/\" or a URL) in these rows, then scan again",
				c.name, MaxSpellings, cdccleaner.ExampleValue(v))
		case utf8.RuneCountInString(v) > MaxSpellingChars:
			return fmt.Errorf("%s holds a value longer than %d characters that is not a canonical path (%s): scan keeps every file such a value could name and will not read values that long; store canonical paths in these rows, then scan again",
				c.name, MaxSpellingChars, cdccleaner.ExampleValue(v))
		case size > MaxSpellingBytes:
			return fmt.Errorf("%s holds more than %d MiB of distinct values that are not canonical paths (e.g. %s): scan keeps every file such a value could name and will not hold that much in memory; store canonical paths in these rows, then scan again",
				c.name, MaxSpellingBytes>>20, cdccleaner.ExampleValue(v))
		}
		if err := fn(c.name, v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the values of %s that are not canonical paths: %w", c.name, err)
	}
	return nil
}
