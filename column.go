package cdccleaner

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
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
	// "watch[0].columns[1]", or "watch[2].path" for a template.
	Field string
	// Template, when set, builds the path from the row's text columns (a
	// `path` entry) instead of taking a column's value; Name is empty then.
	Template *Template
	// Derived are the files (a template) and prefixes (a template ending
	// in "/") removed together with a removed path, rendered from the same
	// row. Watch entries only.
	Derived []Template
	// Match keeps only rows whose columns equal these values, in the
	// order of their column names.
	Match []Match
	// StripPrefix lists leading texts (a base URL, "/media/") removed from
	// a value before it is a path; a value with none of them is no path of
	// the storage. Empty: values are paths as they are.
	StripPrefix []string

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

// Match is one condition of an entry's `match`: the column equals Value.
type Match struct {
	Column string // unquoted, as in pg_attribute
	Value  string
}

// Source names the column as candidates and logs do: "public.photo.image",
// or the table and the template: "public.blobs.{key[0:2]}/{key}".
func (c Column) Source() string {
	if c.Template != nil {
		return c.Schema + "." + c.Table + "." + c.Template.String()
	}
	return c.Schema + "." + c.Table + "." + c.Name
}

// Reads returns the columns of the row the entry reads: its column, or its
// template's, then those its match compares, each once.
func (c Column) Reads() []string {
	var out []string
	if c.Template != nil {
		out = c.Template.Columns()
	} else {
		out = []string{c.Name}
	}
	for _, m := range c.Match {
		if !slices.Contains(out, m.Column) {
			out = append(out, m.Column)
		}
	}
	return out
}

// Strip returns the path a value gives under StripPrefix: the value
// without the first prefix it starts with, or ok false when it has none.
// Without StripPrefix every value is a path as it is.
func (c Column) Strip(v string) (path string, ok bool) {
	if len(c.StripPrefix) == 0 {
		return v, true
	}
	for _, p := range c.StripPrefix {
		if rest, found := strings.CutPrefix(v, p); found && rest != "" {
			return rest, true
		}
	}
	return "", false
}

// Spellings returns the values that give path under StripPrefix: path
// itself without it, else each prefix followed by path.
func (c Column) Spellings(path string) []string {
	if len(c.StripPrefix) == 0 {
		return []string{path}
	}
	out := make([]string, len(c.StripPrefix))
	for i, p := range c.StripPrefix {
		out[i] = p + path
	}
	return out
}

// Equal reports whether c and o are the same in every field (Column holds
// a slice, so == does not compile for it).
func (c Column) Equal(o Column) bool { return reflect.DeepEqual(c, o) }
