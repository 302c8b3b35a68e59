package refcheck

import (
	"context"
	"fmt"
	"strings"
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
// path that a value of c gives as a reference query reads it (a text
// value, an array element, a JSON string leaf at JSONPath, the path a
// template entry renders from the row) and that matches $1, a regular
// expression (cdccleaner.NonCanonicalPattern). As in buildQuery, every FROM
// item is aliased and every reference qualified. For a json column, the
// rows jsonb refuses (which the reference query searches as text) give
// every string literal of their text, "\/" read as "/".
//
// Only the rows that c's match keeps are read. With strip_prefix, the path
// is the value without its prefix, and a value that has none of the
// prefixes is not read: it is no path of the storage (the reference check
// and the decoder say the same), and reading every URL of another site a
// column holds would only make scan refuse.
func spellingValuesSQL(c cdccleaner.Column) (string, error) {
	tbl := pgx.Identifier{c.Schema, c.Table}.Sanitize()
	match := matchSQL(c)
	path := func(e string) string { return e }
	if len(c.StripPrefix) > 0 {
		path = func(e string) string { return stripSQL(e, c.StripPrefix) }
	}
	if c.Template != nil {
		v := path(renderSQL(*c.Template))
		return fmt.Sprintf("SELECT %s FROM %s AS t WHERE %s ~ $1%s", v, tbl, v, match), nil
	}
	col := "t." + pgx.Identifier{c.Name}.Sanitize()
	switch c.Type.Kind {
	case cdccleaner.KindText:
		v := path(col + "::text")
		return fmt.Sprintf("SELECT %s FROM %s AS t WHERE %s ~ $1%s", v, tbl, v, match), nil
	case cdccleaner.KindArray:
		v := path("u.path")
		return fmt.Sprintf("SELECT %s FROM %s AS t CROSS JOIN LATERAL unnest(%s::text[]) AS u(path) WHERE %s ~ $1%s", v, tbl, col, v, match), nil
	case cdccleaner.KindJSON:
		probe := c.JSONPath
		doc := col
		if c.Type.JSONText() {
			doc = "cdc_cleaner.try_jsonb(" + col + ")"
		}
		v, where := path("j.v #>> '{}'"), "(j.v #>> '{}')"
		if len(c.StripPrefix) > 0 {
			where = v
		}
		q := fmt.Sprintf("SELECT %s FROM %s AS t CROSS JOIN LATERAL jsonb_path_query(%s, %s) AS j(v) WHERE %s IS NOT NULL AND jsonb_typeof(j.v) = 'string' AND %s ~ $1%s",
			v, tbl, doc, cdccleaner.QuoteLiteral(probe.SQL()), col, where, match)
		if c.Type.JSONText() {
			v := path("replace(m.s[1], '\\/', '/')")
			q += fmt.Sprintf("\nUNION ALL\nSELECT %s FROM %s AS t CROSS JOIN LATERAL regexp_matches(%s::text, %s, 'g') AS m(s) WHERE %s IS NOT NULL AND cdc_cleaner.try_jsonb(%s) IS NULL AND %s ~ $1%s",
				v, tbl, col, cdccleaner.QuoteLiteral(`"((?:[^"\\]|\\.)*)"`), col, col, v, match)
		}
		return q, nil
	}
	return "", fmt.Errorf("%s.%s: type %s cannot hold paths", tbl, pgx.Identifier{c.Name}.Sanitize(), c.Type.Kind)
}

// stripSQL returns an expression giving the path that the text e gives
// under prefixes, as cdccleaner.Column.Strip does: e without the first of
// them it starts with (compared byte for byte) when more follows, else
// NULL.
func stripSQL(e string, prefixes []string) string {
	var b strings.Builder
	b.WriteString("CASE")
	for _, p := range prefixes {
		lit := cdccleaner.QuoteLiteral(p)
		fmt.Fprintf(&b, " WHEN starts_with((%s) COLLATE \"C\", %s) AND char_length(%s) > char_length(%s) THEN substr(%s, char_length(%s) + 1)", e, lit, e, lit, e, lit)
	}
	b.WriteString(" END")
	return b.String()
}

// renderSQL returns an expression giving the path that the template t
// renders from the row t, as cdccleaner.Template.Render does, or NULL when
// the row has no file (a column NULL or empty, a slice beyond its value).
// Slices are taken in characters (substr), where Render takes bytes: the
// two agree on ASCII values (Active Storage keys, identifiers), and a
// spelling is only read here to keep more files.
func renderSQL(t cdccleaner.Template) string {
	var conds, parts []string
	for _, col := range t.Columns() {
		conds = append(conds, fmt.Sprintf("t.%s::text <> ''", pgx.Identifier{col}.Sanitize()))
	}
	for _, p := range t.Parts {
		if p.Column == "" {
			parts = append(parts, cdccleaner.QuoteLiteral(p.Literal)+"::text")
			continue
		}
		v := "t." + pgx.Identifier{p.Column}.Sanitize() + "::text"
		switch {
		case p.Whole():
			parts = append(parts, v)
		case p.To < 0:
			parts = append(parts, fmt.Sprintf("substr(%s, %d)", v, p.From+1))
		default:
			parts = append(parts, fmt.Sprintf("substr(%s, %d, %d)", v, p.From+1, p.To-p.From))
		}
		if n := max(p.From, p.To); n > 0 && !p.Whole() {
			conds = append(conds, fmt.Sprintf("char_length(%s) >= %d", v, n))
		}
	}
	return fmt.Sprintf("CASE WHEN %s THEN %s END", strings.Join(conds, " AND "), strings.Join(parts, " || "))
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
