package catalog

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Querier is what TypeKinds needs of a connection (a *pgx.Conn or a pool).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type pgType struct {
	typtype  string
	base     uint32 // typbasetype, for a domain
	category string
	elem     uint32 // typelem, for an array
}

// TypeKinds classifies column types by OID as the catalog describes them,
// domains resolved to their base type: text-like types (category S) hold
// one path, arrays of them one path per element, json and jsonb paths at a
// json_path; anything else none. An OID the catalog does not know is
// missing from the result.
func TypeKinds(ctx context.Context, q Querier, oids []uint32) (map[uint32]cdccleaner.ColumnType, error) {
	types := map[uint32]pgType{}
	// Fetch the types, then the base types of domains and the element
	// types of arrays, until nothing new is needed (a domain over a domain
	// over an array of a domain needs several rounds).
	want := append([]uint32(nil), oids...)
	for round := 0; len(want) > 0 && round < 32; round++ {
		rows, err := q.Query(ctx, `SELECT oid, typtype::text, typbasetype, typcategory::text, typelem FROM pg_type WHERE oid = ANY($1::oid[])`, want)
		if err != nil {
			return nil, fmt.Errorf("look up column types: %w", err)
		}
		want = want[:0]
		for rows.Next() {
			var oid uint32
			var t pgType
			if err := rows.Scan(&oid, &t.typtype, &t.base, &t.category, &t.elem); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up column types: %w", err)
			}
			types[oid] = t
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("look up column types: %w", err)
		}
		for _, t := range types {
			for _, next := range []uint32{t.base, t.elem} {
				if _, ok := types[next]; next != 0 && !ok {
					want = append(want, next)
				}
			}
		}
	}
	base := func(oid uint32) uint32 {
		for i := 0; i < 32; i++ {
			t, ok := types[oid]
			if !ok || t.typtype != "d" {
				return oid
			}
			oid = t.base
		}
		return oid
	}
	out := map[uint32]cdccleaner.ColumnType{}
	for _, oid := range oids {
		if _, ok := types[oid]; !ok {
			continue
		}
		b := base(oid)
		bt := types[b]
		k := cdccleaner.ColumnType{Base: b}
		switch {
		case b == cdccleaner.OIDJSON || b == cdccleaner.OIDJSONB:
			k.Kind = cdccleaner.KindJSON
		case bt.category == "A" && types[base(bt.elem)].category == "S":
			k.Kind = cdccleaner.KindArray
			k.Padded = base(bt.elem) == cdccleaner.OIDBpchar
		case bt.category == "S":
			k.Kind = cdccleaner.KindText
			k.Padded = b == cdccleaner.OIDBpchar
		}
		out[oid] = k
	}
	return out, nil
}

// Resolver resolves the same columns again and again (Resolve), keeping
// what it learned of column types: a type's OID always names the same
// type.
type Resolver struct {
	q    Querier
	cols []cdccleaner.Column

	mu    sync.Mutex
	kinds map[uint32]cdccleaner.ColumnType
}

// NewResolver returns a Resolver of cols, the columns as provision.Inspect
// found them at start.
func NewResolver(q Querier, cols []cdccleaner.Column) *Resolver {
	return &Resolver{q: q, cols: cols, kinds: map[uint32]cdccleaner.ColumnType{}}
}

// typeKinds is TypeKinds with a cache.
func (r *Resolver) typeKinds(ctx context.Context, oids []uint32) (map[uint32]cdccleaner.ColumnType, error) {
	r.mu.Lock()
	var missing []uint32
	for _, o := range oids {
		if _, ok := r.kinds[o]; !ok {
			missing = append(missing, o)
		}
	}
	r.mu.Unlock()
	if len(missing) > 0 {
		found, err := TypeKinds(ctx, r.q, missing)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		for o, k := range found {
			r.kinds[o] = k
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[uint32]cdccleaner.ColumnType, len(oids))
	for _, o := range oids {
		if k, ok := r.kinds[o]; ok {
			out[o] = k
		}
	}
	return out, nil
}

// Resolve returns the columns the reference check must search now, for
// the configured columns as Inspect found them at start. For each:
// the column of that name in its table now, with the kind of its current
// type (a column retyped while running); and the column the table (by
// OID) has at its attribute number now, when that is another column
// (renamed, the table renamed): its references count too, since searching
// more columns only keeps more files. A column found neither way (dropped,
// its table gone), or found with a type that cannot hold paths as
// configured, is returned as configured: its query fails, and the stream
// holds until the configuration is fixed, rather than the check
// quietly searching less.
//
// The reference check calls it before every query, after the transactions
// whose candidates it checks are visible, so a column those transactions
// wrote is in the catalog it reads.
func (r *Resolver) Resolve(ctx context.Context) ([]cdccleaner.Column, error) {
	q, cols := r.q, r.cols
	n := len(cols)
	schemas, tables, names := make([]string, n), make([]string, n), make([]string, n)
	rels, nums := make([]uint32, n), make([]int16, n)
	for i, c := range cols {
		schemas[i], tables[i], names[i], rels[i], nums[i] = c.Schema, c.Table, c.Name, c.TableOID, c.AttNum
	}
	// For each configured column: by name, and by table OID and attribute
	// number (schema, table and column as they are called now).
	rows, err := q.Query(ctx, `SELECT k.i, 'name', n.nspname::text, c.relname::text, a.attname::text, a.atttypid
		FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(schema, tbl, col, i)
		JOIN pg_namespace n ON n.nspname = k.schema
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = k.tbl
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = k.col AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT k.i, 'num', n.nspname::text, c.relname::text, a.attname::text, a.atttypid
		FROM unnest($4::oid[], $5::int2[]) WITH ORDINALITY AS k(rel, num, i)
		JOIN pg_class c ON c.oid = k.rel
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = k.rel AND a.attnum = k.num AND NOT a.attisdropped`,
		schemas, tables, names, rels, nums)
	if err != nil {
		return nil, fmt.Errorf("look up the watched and protect columns: %w", err)
	}
	type found struct {
		how, schema, table, name string
		typ                      uint32
	}
	byCol := map[int][]found{}
	var oids []uint32
	for rows.Next() {
		var i int
		var f found
		if err := rows.Scan(&i, &f.how, &f.schema, &f.table, &f.name, &f.typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up the watched and protect columns: %w", err)
		}
		byCol[i-1] = append(byCol[i-1], f)
		oids = append(oids, f.typ)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up the watched and protect columns: %w", err)
	}
	kinds, err := r.typeKinds(ctx, oids)
	if err != nil {
		return nil, err
	}
	var out []cdccleaner.Column
	seen := map[[5]string]bool{}
	add := func(c cdccleaner.Column) {
		// One column (or template) of one table searched once per
		// storage; entries that match tells apart search other rows.
		k := [5]string{c.Storage, c.Schema, c.Table, c.Name, entryKey(c)}
		if !seen[k] {
			seen[k] = true
			out = append(out, c)
		}
	}
	for i, c := range cols {
		var resolved []cdccleaner.Column
		ok := len(byCol[i]) > 0
		for _, f := range byCol[i] {
			k := kinds[f.typ]
			if k.Kind == cdccleaner.KindNone || c.JSONPath != nil && k.Kind != cdccleaner.KindJSON {
				ok = false // cannot hold paths as configured
				break
			}
			r := c
			r.Schema, r.Table, r.Name, r.TypeOID, r.Type = f.schema, f.table, f.name, f.typ, k
			resolved = append(resolved, r)
		}
		if !ok {
			add(c) // as configured: its query fails
			continue
		}
		for _, r := range resolved {
			add(r)
		}
	}
	return out, nil
}

// entryKey tells apart entries of one table and storage beyond the column
// name: a template entry (whose Name is empty) by its template, and any
// entry by its match. It is empty for the plain columns form.
func entryKey(c cdccleaner.Column) string {
	var b strings.Builder
	if c.Template != nil {
		fmt.Fprintf(&b, "%#v", c.Template.Parts) // names quoted: {"Name"} is not {name}
	}
	for _, m := range c.Match {
		fmt.Fprintf(&b, "|%q=%q", m.Column, m.Value)
	}
	return b.String()
}

// MissingColumnHint says, from the catalog, what became of the configured
// column col (as provision.Inspect found it at start) that a Relation
// message lacks, and what to do: it was renamed, or dropped, or the
// message comes from before the column had its configured name.
//
// It is only a hint, added to the error the cleaner logs while it holds the
// stream (which does not depend on it): when the catalog cannot be read,
// it returns "" rather than an error, and never a hint built from a row it
// could not read.
func MissingColumnHint(ctx context.Context, q Querier, col cdccleaner.Column) string {
	var name string
	var dropped, byName bool
	rows, err := q.Query(ctx, `SELECT a.attname::text, a.attisdropped,
			EXISTS (SELECT 1 FROM pg_attribute b JOIN pg_class c ON c.oid = b.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			         WHERE n.nspname = $3 AND c.relname = $4 AND b.attname = $5 AND b.attnum > 0 AND NOT b.attisdropped)
		FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum = $2`, col.TableOID, col.AttNum, col.Schema, col.Table, col.Name)
	if err != nil {
		return ""
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		if err := rows.Scan(&name, &dropped, &byName); err != nil {
			return ""
		}
		found = true
	}
	if rows.Err() != nil {
		return ""
	}
	switch {
	case !found:
		return fmt.Sprintf("Its table %s.%s is not the one the cleaner started with (dropped, or recreated): fix the configuration and restart; cdc-cleaner scan finds the files of the rows that went with it", col.Schema, col.Table)
	case dropped:
		return fmt.Sprintf("It was dropped: remove %q from the configuration and restart now; cdc-cleaner scan finds the files it referenced", col.Name)
	case byName && name == col.Name:
		return fmt.Sprintf("The table has %q now, but this change was made before it did (before a rename or an ADD COLUMN that the configuration already reflects): put back the column's name at the time (or remove it) until the cleaner has gone past this change", col.Name)
	default:
		return fmt.Sprintf("It was renamed to %q: put that name in the configuration and restart once the cleaner logs that everything before this change is confirmed (changes from before the rename still have the old name)", name)
	}
}
