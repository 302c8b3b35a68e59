package decoder

import (
	"fmt"
	"strings"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// builtinTypes are the types the decoder knows by OID (pg_type.dat). Any
// other type of a watched column (a domain, citext, an extension's array)
// must be described by the catalog: a Column's Type, Types or AddType.
var builtinTypes = map[uint32]cdccleaner.ColumnType{
	25:   {Kind: cdccleaner.KindText},                // text
	1043: {Kind: cdccleaner.KindText},                // varchar
	19:   {Kind: cdccleaner.KindText},                // name
	1042: {Kind: cdccleaner.KindText, Padded: true},  // bpchar: character(n)
	1009: {Kind: cdccleaner.KindArray},               // text[]
	1015: {Kind: cdccleaner.KindArray},               // varchar[]
	1003: {Kind: cdccleaner.KindArray},               // name[]
	1014: {Kind: cdccleaner.KindArray, Padded: true}, // bpchar[]
	114:  {Kind: cdccleaner.KindJSON},                // json
	3802: {Kind: cdccleaner.KindJSON},                // jsonb
}

// Paths returns the paths that one value of a column of type t references,
// given the value in PostgreSQL's text form (as pgoutput sends it, and as
// a ::text cast reads it): the value itself, each element of an array, or
// each string at jp in a JSON document. The empty string references
// nothing (Django stores an empty string for an empty FileField), and
// character(n) padding is not part of a path.
func Paths(t cdccleaner.ColumnType, jp cdccleaner.JSONPath, text []byte) ([]string, error) {
	if len(text) == 0 {
		return nil, nil
	}
	switch t.Kind {
	case cdccleaner.KindArray:
		elems, err := parseArray(string(text))
		if err != nil || !t.Padded {
			return elems, err
		}
		out := elems[:0]
		for _, e := range elems {
			if e = strings.TrimRight(e, " "); e != "" {
				out = append(out, e)
			}
		}
		return out, nil
	case cdccleaner.KindJSON:
		return jp.Strings(text)
	default:
		p := string(text)
		if t.Padded {
			if p = strings.TrimRight(p, " "); p == "" {
				return nil, nil
			}
		}
		return []string{p}, nil
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
