package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
)

// SpellingTimeout bounds the query InspectSpellings runs for each column.
const SpellingTimeout = 5 * time.Second

// InspectSpellings reads every column of r.Columns (those Inspect found)
// for values that are not canonical paths (cdccleaner.NonCanonical:
// "./a.jpg", "a//b.jpg", "/media/a.jpg", a URL) and adds a warning for
// each column that holds some, with their count, an example and the files
// it could name; or one saying the column was not checked, when its query
// runs longer than timeout (it reads the whole table: no index serves a
// regular expression). The reference check of run compares values
// exactly, so such a value keeps no file; scan keeps every file it could
// name.
func InspectSpellings(ctx context.Context, conn *pgx.Conn, cfg *config.Config, r *Report, timeout time.Duration) {
	for _, c := range r.Columns {
		field := c.Field
		name := config.QuoteIdentifier(c.Schema) + "." + config.QuoteIdentifier(c.Table) + "." + config.QuoteIdentifier(c.Name)
		if c.Template != nil {
			name = fmt.Sprintf("%s.%s path %q", config.QuoteIdentifier(c.Schema), config.QuoteIdentifier(c.Table), c.Template.Source)
		}
		n, example, err := countSpellings(ctx, conn, c, timeout)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "57014": // query_canceled
			r.add(Warning, CodeUnchecked, field, "%s: not checked for values that are not canonical paths: the table is too large to read within %s", name, timeout)
		case err != nil:
			r.add(Warning, CodeUnchecked, field, "%s: not checked for values that are not canonical paths: %v", name, err)
		case n == 0:
			r.add(OK, CodeGeneral, field, "%s holds only canonical paths", name)
		default:
			r.add(Warning, CodeGeneral, field, "%s", spellingMessage(name, n, example))
		}
	}
}

// spellingMessage says what a column holding n non-canonical values, one
// of them example, means for scan and run.
func spellingMessage(name string, n int64, example string) string {
	names := cdccleaner.CanonicalNames(example)
	could := "no file"
	if len(names) > 0 {
		could = strings.Join(names[:min(len(names), 5)], ", ")
		if len(names) > 5 {
			could += fmt.Sprintf(" and %d more", len(names)-5)
		}
	}
	what := fmt.Sprintf("%d values that are not canonical paths", n)
	if n == 1 {
		what = "1 value that is not a canonical path"
	}
	return fmt.Sprintf("%s holds %s (absolute, with \"//\", \"./\" or \"..\", ending in \"/\", or a URL), e.g. %s, which could name %s. "+
		"scan keeps every file such a value could name; run compares values exactly, so such a value keeps no file (a row holding \"./a.jpg\" does not keep a.jpg from being deleted when another row's \"a.jpg\" vanishes): "+
		"store paths relative to the storage root or prefix, as the files are named there, in these rows",
		name, what, cdccleaner.ExampleValue(example), could)
}

// countSpellings counts the non-canonical values of c and returns the
// least of them, within timeout.
func countSpellings(ctx context.Context, conn *pgx.Conn, c cdccleaner.Column, timeout time.Duration) (int64, string, error) {
	q, err := refcheck.SpellingCountSQL(c)
	if err != nil {
		return 0, "", err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, "", err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", max(timeout.Milliseconds(), 1))); err != nil {
		return 0, "", err
	}
	var n int64
	var example *string
	if err := tx.QueryRow(ctx, q, cdccleaner.NonCanonicalPattern).Scan(&n, &example); err != nil {
		return 0, "", err
	}
	if example == nil {
		return n, "", nil
	}
	return n, *example, nil
}
