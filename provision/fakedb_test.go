package provision

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// fakeDB is a Querier that answers each query with the first answer whose
// match the SQL contains, so that a test can make one catalog query fail
// and see what Inspect reports. A query no answer matches fails the test.
type fakeDB struct {
	t       *testing.T
	answers []answer
}

// answer is what fakeDB returns for the queries it matches: rows (none:
// pgx.ErrNoRows for QueryRow, no rows for Query), or err from Query and
// QueryRow's Scan, or rowsErr from Rows.Err after the rows.
type answer struct {
	match   string
	rows    [][]any
	byArgs  func(args []any) [][]any // rows for these arguments, instead of rows
	err     error
	rowsErr error
}

func (a answer) rowsFor(args []any) [][]any {
	if a.byArgs != nil {
		return a.byArgs(args)
	}
	return a.rows
}

var _ Querier = (*fakeDB)(nil)

func (db *fakeDB) find(sql string) answer {
	db.t.Helper()
	for _, a := range db.answers {
		if strings.Contains(sql, a.match) {
			return a
		}
	}
	db.t.Errorf("unexpected query:\n%s", sql)
	return answer{err: fmt.Errorf("fakeDB: no answer for %q", sql)}
}

func (db *fakeDB) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	a := db.find(sql)
	if a.err != nil {
		return nil, a.err
	}
	return &fakeRows{rows: a.rowsFor(args), err: a.rowsErr, i: -1}, nil
}

func (db *fakeDB) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	a := db.find(sql)
	return fakeRow{rows: a.rowsFor(args), err: a.err}
}

type fakeRow struct {
	rows [][]any
	err  error
}

func (r fakeRow) Scan(dest ...any) error {
	switch {
	case r.err != nil:
		return r.err
	case len(r.rows) == 0:
		return pgx.ErrNoRows
	}
	return assign(r.rows[0], dest)
}

type fakeRows struct {
	rows [][]any
	err  error
	i    int
}

func (r *fakeRows) Close()                                       {}
func (r *fakeRows) Err() error                                   { return r.err }
func (r *fakeRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *fakeRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *fakeRows) RawValues() [][]byte                          { return nil }
func (r *fakeRows) Conn() *pgx.Conn                              { return nil }
func (r *fakeRows) TypeMap() *pgtype.Map                         { return nil }
func (r *fakeRows) Values() ([]any, error)                       { return r.rows[r.i], nil }
func (r *fakeRows) Scan(dest ...any) error                       { return assign(r.rows[r.i], dest) }

func (r *fakeRows) Next() bool {
	r.i++
	return r.i < len(r.rows)
}

// assign stores row in dest as pgx would: nil makes a pointer nil, a value
// is stored through as many pointers as dest has.
func assign(row []any, dest []any) error {
	if len(row) != len(dest) {
		return fmt.Errorf("fakeDB: %d values for %d destinations", len(row), len(dest))
	}
	for i, v := range row {
		d := reflect.ValueOf(dest[i]).Elem()
		if v == nil {
			d.Set(reflect.Zero(d.Type()))
			continue
		}
		for d.Kind() == reflect.Pointer && reflect.TypeOf(v) != d.Type() {
			d.Set(reflect.New(d.Type().Elem()))
			d = d.Elem()
		}
		val := reflect.ValueOf(v)
		if !val.Type().ConvertibleTo(d.Type()) {
			return fmt.Errorf("fakeDB: cannot store %T in %s", v, d.Type())
		}
		d.Set(val.Convert(d.Type()))
	}
	return nil
}

var errInjected = errors.New("injected failure")
