package cdccleaner

import (
	"fmt"
	"reflect"
)

// ValueKind is how a column's values hold file paths.
type ValueKind int

const (
	// KindNone: the type cannot hold paths (an integer, say).
	KindNone ValueKind = iota
	// KindText: the whole value is one path (text, varchar, character,
	// and domains over them).
	KindText
	// KindArray: an array of text-like values; each element is a path.
	KindArray
	// KindJSON: json or jsonb; the string leaves at the column's JSONPath
	// are paths.
	KindJSON
)

var kindNames = [...]string{KindNone: "none", KindText: "text", KindArray: "array", KindJSON: "json"}

func (k ValueKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Type OIDs from PostgreSQL's pg_type.dat that decide how a value is read.
const (
	OIDJSON   = 114
	OIDJSONB  = 3802
	OIDBpchar = 1042 // character(n)
)

// ColumnType is how values of one column type hold paths, as the catalog
// describes the type (domains resolved to their base type).
type ColumnType struct {
	Kind ValueKind
	// Padded is set for character(n) and arrays of it (through domains
	// too): the value is padded with spaces to n, which PostgreSQL ignores
	// when it compares such values, so trailing spaces are not part of a
	// path.
	Padded bool
	// Base is the type's OID once domains are resolved: OIDJSON for json
	// (read through cdc_cleaner.try_jsonb, since not every json value is
	// valid jsonb), OIDJSONB for jsonb. Zero when unknown.
	Base uint32
}

// JSONText reports whether the type is json rather than jsonb: no index can
// serve it, and a value jsonb refuses is searched as text.
func (t ColumnType) JSONText() bool { return t.Kind == KindJSON && t.Base == OIDJSON }

// Column is one configured column whose values reference files of a
// storage: a watched column (its vanished paths become candidates) or a
// protect column (only searched by the reference check). The configuration
// builds it once (config.Config.Columns); inspection of the catalog fills
// the fields below Protect, and the decoder, the reference check, scan and
// inspection all read the same value. Later layouts (a path built from
// several columns) add their fields here.
type Column struct {
	Storage string // name of the storage in the configuration
	Schema  string // unquoted, as in pg_namespace
	Table   string // unquoted, as in pg_class
	Name    string // unquoted, as in pg_attribute
	// JSONPath says where paths sit in a json or jsonb column; nil: the
	// whole value is one path.
	JSONPath JSONPath
	// Protect is set for a protect column: searched, never watched.
	Protect bool
	// Field is where the column is configured, for messages:
	// "watch[0].columns[1]".
	Field string

	// Filled from the catalog.

	Type     ColumnType
	TypeName string // format_type, e.g. "character varying(100)"
	TypeOID  uint32
	// TableOID and AttNum identify the column in the catalog whatever it
	// is called later (ALTER TABLE ... RENAME COLUMN keeps both).
	TableOID uint32
	AttNum   int16
	// Partitioned is set when the column's table is partitioned: its
	// changes arrive from its partitions (publish_via_partition_root).
	Partitioned bool
	// Indexed is set when an index starts with the column.
	Indexed bool
}

// Source names the column as candidates and logs do: "public.photo.image".
func (c Column) Source() string { return c.Schema + "." + c.Table + "." + c.Name }

// Equal reports whether c and o are the same in every field (Column holds
// a slice, so == does not compile for it).
func (c Column) Equal(o Column) bool { return reflect.DeepEqual(c, o) }
