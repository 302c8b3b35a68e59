package replication

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is what TypeKinds needs of a connection (a *pgx.Conn or a pool).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// TypeKind is how values of a column type hold paths.
type TypeKind struct {
	Kind ValueKind // "" when the type cannot hold paths
	// Base is the type after domains are resolved: 114 for json (read
	// through cdc_cleaner.try_jsonb), 3802 for jsonb.
	Base uint32
	// Padded is set for character(n) and arrays of it (through domains
	// too): PostgreSQL ignores trailing spaces when it compares them.
	Padded bool
}

// Type OIDs from pg_type.dat.
const (
	oidBpchar = 1042
	oidJSON   = 114
	oidJSONB  = 3802
)

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
func TypeKinds(ctx context.Context, q Querier, oids []uint32) (map[uint32]TypeKind, error) {
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
	out := map[uint32]TypeKind{}
	for _, oid := range oids {
		if _, ok := types[oid]; !ok {
			continue
		}
		b := base(oid)
		bt := types[b]
		k := TypeKind{Base: b}
		switch {
		case b == oidJSON || b == oidJSONB:
			k.Kind = KindJSON
		case bt.category == "A" && types[base(bt.elem)].category == "S":
			k.Kind = KindArray
			k.Padded = base(bt.elem) == oidBpchar
		case bt.category == "S":
			k.Kind = KindText
			k.Padded = b == oidBpchar
		}
		out[oid] = k
	}
	return out, nil
}

// Refresh returns cols as the catalog describes them now: each column,
// found by schema, table and name as the configuration names it, with the
// kind of its current type (a column retyped while the cleaner runs). A
// column that no longer exists, or whose type can no longer hold paths, is
// returned as it was: queries over it fail until the configuration is
// fixed, and check says what to fix.
func Refresh(ctx context.Context, q Querier, cols []Column) ([]Column, error) {
	schemas, tables, names := make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		schemas[i], tables[i], names[i] = c.Schema, c.Table, c.Column
	}
	rows, err := q.Query(ctx, `SELECT k.i, a.atttypid
		FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(schema, tbl, col, i)
		JOIN pg_namespace n ON n.nspname = k.schema
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = k.tbl
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = k.col AND a.attnum > 0 AND NOT a.attisdropped`, schemas, tables, names)
	if err != nil {
		return nil, fmt.Errorf("look up the watched and protect columns: %w", err)
	}
	typeOf := map[int]uint32{}
	var oids []uint32
	for rows.Next() {
		var i int
		var oid uint32
		if err := rows.Scan(&i, &oid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up the watched and protect columns: %w", err)
		}
		typeOf[i-1] = oid
		oids = append(oids, oid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up the watched and protect columns: %w", err)
	}
	kinds, err := TypeKinds(ctx, q, oids)
	if err != nil {
		return nil, err
	}
	out := make([]Column, len(cols))
	for i, c := range cols {
		out[i] = c
		oid, ok := typeOf[i]
		if !ok {
			continue // gone: as it was
		}
		k := kinds[oid]
		if k.Kind == "" || c.JSONPath != "" && k.Kind != KindJSON {
			continue // cannot hold paths as configured: as it was
		}
		out[i].TypeOID, out[i].Kind, out[i].Base, out[i].Padded = oid, k.Kind, k.Base, k.Padded
	}
	return out, nil
}
