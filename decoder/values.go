package decoder

import (
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
)

// ValueKind is how a column's text form holds paths.
type ValueKind int

const (
	// KindAuto infers the kind from the column's type OID in the Relation
	// message (built-in types only).
	KindAuto ValueKind = iota
	// KindText: the whole value is one path.
	KindText
	// KindArray: a PostgreSQL array literal; each element is a path.
	KindArray
	// KindJSON: json or jsonb; string leaves at the JSON path are paths.
	KindJSON
)

// Type OIDs from pg_type.dat. A domain over text arrives with its own OID and
// is read as text, which is what its output function produces.
const (
	oidJSON         = 114
	oidJSONB        = 3802
	oidTextArray    = 1009
	oidVarcharArray = 1015
	oidBpcharArray  = 1014
	oidNameArray    = 1003
)

func kindOf(typeOID uint32, hasJSONPath bool) ValueKind {
	switch typeOID {
	case oidJSON, oidJSONB:
		return KindJSON
	case oidTextArray, oidVarcharArray, oidBpcharArray, oidNameArray:
		return KindArray
	}
	if hasJSONPath {
		// A json_path on a column that is not json: read it as JSON anyway,
		// which fails loudly (as a warning) instead of guessing.
		return KindJSON
	}
	return KindText
}

// refs returns the paths a column value references. NULL and the empty
// string reference nothing (Django stores an empty string for an empty
// FileField).
func (c column) refs(v *pglogrepl.TupleDataColumn) ([]string, error) {
	switch v.DataType {
	case pglogrepl.TupleDataTypeNull:
		return nil, nil
	case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
	default:
		return nil, fmt.Errorf("unexpected tuple data type %q", v.DataType)
	}
	if len(v.Data) == 0 {
		return nil, nil
	}
	switch c.kind {
	case KindArray:
		return parseArray(string(v.Data))
	case KindJSON:
		return c.json.Strings(v.Data)
	default:
		return []string{string(v.Data)}, nil
	}
}

// parseArray reads PostgreSQL's text form of an array of strings, of any
// number of dimensions, and returns its non-NULL, non-empty elements.
func parseArray(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		// Explicit bounds, as in "[0:1]={a,b}".
		i := strings.IndexByte(s, '=')
		if i < 0 {
			return nil, fmt.Errorf("array literal with bounds but no '='")
		}
		s = s[i+1:]
	}
	var out []string
	depth := 0
	i := 0
	expectElem := false
	for i < len(s) {
		switch ch := s[i]; {
		case ch == '{':
			depth++
			i++
			expectElem = true
		case ch == '}':
			if depth == 0 {
				return nil, fmt.Errorf("unbalanced '}' in array literal")
			}
			depth--
			i++
			expectElem = false
		case ch == ',':
			i++
			expectElem = true
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case depth == 0:
			return nil, fmt.Errorf("array literal must start with '{'")
		case ch == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted element in array literal")
			}
			if b.Len() > 0 {
				out = append(out, b.String())
			}
			expectElem = false
		default:
			if !expectElem {
				return nil, fmt.Errorf("unexpected %q in array literal", ch)
			}
			j := i
			var b strings.Builder
			for j < len(s) && s[j] != ',' && s[j] != '}' {
				if s[j] == '\\' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j += 2
					continue
				}
				b.WriteByte(s[j])
				j++
			}
			elem := strings.TrimRight(b.String(), " \t\r\n")
			if elem != "NULL" && elem != "" {
				out = append(out, elem)
			}
			i = j
			expectElem = false
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '{' in array literal")
	}
	return out, nil
}
