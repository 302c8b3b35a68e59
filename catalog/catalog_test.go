package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// failingQuerier fails its query, or (rows set) returns one row whose Scan
// fails, or rows whose Err fails after them.
type failingQuerier struct {
	queryErr, scanErr, rowsErr error
}

func (q failingQuerier) Query(context.Context, string, ...any) (pgx.Rows, error) {
	if q.queryErr != nil {
		return nil, q.queryErr
	}
	return &failingRows{scanErr: q.scanErr, err: q.rowsErr}, nil
}

type failingRows struct {
	scanErr, err error
	done         bool
}

func (r *failingRows) Close()                                       {}
func (r *failingRows) Err() error                                   { return r.err }
func (r *failingRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *failingRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *failingRows) RawValues() [][]byte                          { return nil }
func (r *failingRows) Conn() *pgx.Conn                              { return nil }
func (r *failingRows) TypeMap() *pgtype.Map                         { return nil }
func (r *failingRows) Values() ([]any, error)                       { return nil, r.scanErr }
func (r *failingRows) Scan(...any) error                            { return r.scanErr }

// Next yields one row when Scan is to fail on it, none otherwise.
func (r *failingRows) Next() bool {
	if r.done || r.scanErr == nil {
		return false
	}
	r.done = true
	return true
}

// TestMissingColumnHintWhenTheCatalogFails: the hint is only a hint in a
// log, so a catalog that cannot be read gives none; never a wrong one (a
// row that could not be read is not a table that is gone).
func TestMissingColumnHintWhenTheCatalogFails(t *testing.T) {
	col := cdccleaner.Column{Schema: "public", Table: "t", Name: "f", TableOID: 1, AttNum: 2}
	failure := errors.New("injected failure")
	for name, q := range map[string]failingQuerier{
		"query": {queryErr: failure},
		"scan":  {scanErr: failure},
		"rows":  {rowsErr: failure},
	} {
		t.Run(name, func(t *testing.T) {
			if got := MissingColumnHint(context.Background(), q, col); got != "" {
				t.Errorf("MissingColumnHint = %q, want no hint", got)
			}
		})
	}
}

// TestTypeKindsReportsFailures: a type that cannot be looked up is an
// error, not a column that holds no paths.
func TestTypeKindsReportsFailures(t *testing.T) {
	failure := errors.New("injected failure")
	for name, q := range map[string]failingQuerier{
		"query": {queryErr: failure},
		"scan":  {scanErr: failure},
		"rows":  {rowsErr: failure},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := TypeKinds(context.Background(), q, []uint32{25}); !errors.Is(err, failure) {
				t.Errorf("TypeKinds error = %v, want the failure", err)
			}
		})
	}
}

// TestResolveKeepsEntriesMatchTellsApart: two entries of one storage on
// one column, or two templates on one table, that match tells apart are
// two searches. Resolve once took them for one (same storage, table and
// column name) and dropped the second: the reference check would then not
// see the rows only that entry reads, and delete their files.
func TestResolveKeepsEntriesMatchTellsApart(t *testing.T) {
	tpl, err := cdccleaner.ParseTemplate("{key[0:2]}/{key}", func(s string) (string, error) { return s, nil })
	if err != nil {
		t.Fatal(err)
	}
	local := []cdccleaner.Match{{Column: "service_name", Value: "local"}}
	mirror := []cdccleaner.Match{{Column: "service_name", Value: "mirror"}}
	cols := []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "blobs", Name: "key", Match: local},
		{Storage: "media", Schema: "public", Table: "blobs", Name: "key", Match: mirror},
		{Storage: "media", Schema: "public", Table: "blobs", Template: &tpl, Match: local},
		{Storage: "media", Schema: "public", Table: "blobs", Template: &tpl, Match: mirror},
		{Storage: "media", Schema: "public", Table: "blobs", Template: &tpl, Match: mirror}, // the same again
	}
	// No catalog rows: every column is returned as configured.
	got, err := NewResolver(failingQuerier{}, cols).Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("resolved %d entries, want 4: %+v", len(got), got)
	}
}
