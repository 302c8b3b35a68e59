package replication

import (
	"context"
	"fmt"
	"slices"

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

// Refresh returns cols as the catalog describes them now, for a reference
// check whose queries failed: each column found by schema, table and name
// as the configuration names it, with the kind of its current type (a
// column retyped while running). A column renamed since cols were read
// (found by its table's OID and its attribute number) is returned under
// its new name, and a column dropped from its table is left out: it
// references nothing any more. A column whose table is gone, or whose type
// can no longer hold paths, is returned as it was: queries over it fail
// until the configuration is fixed, and check says what to fix.
func Refresh(ctx context.Context, q Querier, cols []Column) ([]Column, error) {
	n := len(cols)
	schemas, tables, names := make([]string, n), make([]string, n), make([]string, n)
	rels, nums := make([]uint32, n), make([]int16, n)
	for i, c := range cols {
		schemas[i], tables[i], names[i], rels[i], nums[i] = c.Schema, c.Table, c.Column, c.TableOID, c.AttNum
	}
	type found struct {
		name    string
		typ     uint32
		dropped bool
	}
	byName, byNum := map[int]found{}, map[int]found{}
	read := func(into map[int]found, sql string, args ...any) error {
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("look up the watched and protect columns: %w", err)
		}
		for rows.Next() {
			var i int
			var f found
			if err := rows.Scan(&i, &f.name, &f.typ, &f.dropped); err != nil {
				rows.Close()
				return fmt.Errorf("look up the watched and protect columns: %w", err)
			}
			into[i-1] = f
		}
		return rows.Err()
	}
	if err := read(byName, `SELECT k.i, a.attname::text, a.atttypid, false
		FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(schema, tbl, col, i)
		JOIN pg_namespace n ON n.nspname = k.schema
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = k.tbl
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = k.col AND a.attnum > 0 AND NOT a.attisdropped`, schemas, tables, names); err != nil {
		return nil, err
	}
	if err := read(byNum, `SELECT k.i, a.attname::text, a.atttypid, a.attisdropped
		FROM unnest($1::oid[], $2::int2[]) WITH ORDINALITY AS k(rel, num, i)
		JOIN pg_attribute a ON a.attrelid = k.rel AND a.attnum = k.num`, rels, nums); err != nil {
		return nil, err
	}
	var oids []uint32
	for _, f := range byName {
		oids = append(oids, f.typ)
	}
	for _, f := range byNum {
		oids = append(oids, f.typ)
	}
	kinds, err := TypeKinds(ctx, q, oids)
	if err != nil {
		return nil, err
	}
	var out []Column
	for i, c := range cols {
		f, ok := byName[i]
		if !ok && c.TableOID != 0 {
			switch g, same := byNum[i]; {
			case same && g.dropped:
				continue // dropped: no row holds a value in it any more
			case same:
				f, ok = g, true // renamed
			}
		}
		if ok {
			if k := kinds[f.typ]; k.Kind != "" && (c.JSONPath == "" || k.Kind == KindJSON) {
				c.Column, c.TypeOID, c.Kind, c.Base, c.Padded = f.name, f.typ, k.Kind, k.Base, k.Padded
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// RenamedColumn tells, from the catalog, whether the watched column of
// schema.table that a Relation message lacks was renamed, and under which
// name the message holds it; rel lists the message's columns in order
// (names and type OIDs). It is either the column's name now, when the
// configuration still has the old one (found by the table's OID and the
// column's attribute number, as Inspect read them at start: col), or the
// name the message has at the column's place, when the configuration has
// the new one and the message was sent before the rename: the table then
// has exactly the message's columns, in its order and with its types,
// except for that one name. Anything else (a column dropped, added or
// retyped meanwhile) is not a rename it can be sure of: ok is false.
func RenamedColumn(ctx context.Context, q Querier, col Column, relNames []string, relTypes []uint32) (name string, ok bool, err error) {
	has := func(n string) bool { return slices.Contains(relNames, n) }
	var now string
	var dropped bool
	rows, err := q.Query(ctx, `SELECT attname::text, attisdropped FROM pg_attribute WHERE attrelid = $1 AND attnum = $2`, col.TableOID, col.AttNum)
	if err != nil {
		return "", false, fmt.Errorf("look up column %q of %s.%s: %w", col.Column, col.Schema, col.Table, err)
	}
	found := false
	for rows.Next() {
		if err := rows.Scan(&now, &dropped); err != nil {
			rows.Close()
			return "", false, err
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return "", false, err
	}
	if found && !dropped && now != col.Column && has(now) {
		return now, true, nil // renamed after the cleaner started
	}

	// The table as it is now: its columns as pgoutput sends them (not
	// dropped, not generated), in order.
	rows, err = q.Query(ctx, `SELECT a.attname::text, a.atttypid
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, col.Schema, col.Table)
	if err != nil {
		return "", false, fmt.Errorf("look up the columns of %s.%s: %w", col.Schema, col.Table, err)
	}
	var names []string
	var types []uint32
	for rows.Next() {
		var n string
		var t uint32
		if err := rows.Scan(&n, &t); err != nil {
			rows.Close()
			return "", false, err
		}
		names, types = append(names, n), append(types, t)
	}
	if err := rows.Err(); err != nil {
		return "", false, err
	}
	if len(names) != len(relNames) {
		return "", false, nil
	}
	at := -1
	for i := range names {
		if types[i] != relTypes[i] {
			return "", false, nil
		}
		if names[i] != relNames[i] {
			if at >= 0 || names[i] != col.Column || has(names[i]) {
				return "", false, nil
			}
			at = i
		}
	}
	if at < 0 {
		return "", false, nil
	}
	return relNames[at], true, nil // the message predates a rename the configuration knows
}
