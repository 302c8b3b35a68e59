package cdccleaner

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// JSONPath is a parsed json_path: where file paths sit inside a json or
// jsonb column. The configuration, the decoder (which reads old and new
// values) and the reference check (which searches live rows) share it.
type JSONPath []JSONStep

// JSONStep is one step of a parsed json_path.
type JSONStep struct {
	Key  string // object member to descend into; empty when Each is set
	Each bool   // "[*]": every element of an array
}

// ParseJSONPath parses a json_path: object keys separated by dots, each
// optionally followed by "[*]" for every element of an array, e.g. "cover",
// "files[*].path", "gallery[*].sizes[*].path", or "[*]" for a top-level array
// of strings. The path leads to string leaves, each one file path.
func ParseJSONPath(s string) (JSONPath, error) {
	if s == "" {
		return nil, errors.New("empty path")
	}
	var steps JSONPath
	i := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "[*]"):
			steps = append(steps, JSONStep{Each: true})
			i += 3
		case s[i] == '[':
			return nil, fmt.Errorf("%q: only [*] is supported at offset %d", s, i)
		case s[i] == ']':
			return nil, fmt.Errorf("%q: unexpected ] at offset %d", s, i)
		case s[i] == '.' && i == 0:
			return nil, fmt.Errorf("%q: a path starts with a key or [*], not a dot", s)
		default:
			if i > 0 {
				// after a key or [*]: a dot and a key, or [*] (handled above)
				if s[i] != '.' {
					return nil, fmt.Errorf("%q: expected . or [*] at offset %d", s, i)
				}
				i++
			}
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' && s[j] != ']' {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("%q: empty key at offset %d", s, i)
			}
			steps = append(steps, JSONStep{Key: s[i:j]})
			i = j
		}
	}
	return steps, nil
}

// String renders the path back into json_path syntax.
func (steps JSONPath) String() string {
	var b strings.Builder
	for i, st := range steps {
		if st.Each {
			b.WriteString("[*]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(st.Key)
	}
	return b.String()
}

// Strings returns the string leaves of the JSON document doc at the path,
// skipping empty strings, nulls and values of other types. An empty path
// selects the document itself.
func (steps JSONPath) Strings(doc []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("parse json: %w", err)
	}
	var out []string
	var walk func(v any, rest JSONPath)
	walk = func(v any, rest JSONPath) {
		if len(rest) == 0 {
			if s, ok := v.(string); ok && s != "" {
				out = append(out, s)
			}
			return
		}
		if rest[0].Each {
			if arr, ok := v.([]any); ok {
				for _, e := range arr {
					walk(e, rest[1:])
				}
			}
			return
		}
		if obj, ok := v.(map[string]any); ok {
			if child, ok := obj[rest[0].Key]; ok {
				walk(child, rest[1:])
			}
		}
	}
	walk(v, steps)
	return out, nil
}

// Containing returns the smallest JSON document that holds leaf at the
// path: {"files":[{"path":leaf}]} for files[*].path. A row whose value
// contains it (jsonb @>) references leaf there.
func (steps JSONPath) Containing(leaf string) string {
	var v any = leaf
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Each {
			v = []any{v}
		} else {
			v = map[string]any{steps[i].Key: v}
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// SQL returns the path in SQL/JSON path syntax, with every key quoted:
// $."files"[*]."path".
func (steps JSONPath) SQL() string {
	var b strings.Builder
	b.WriteString("$")
	for _, st := range steps {
		if st.Each {
			b.WriteString("[*]")
			continue
		}
		k, _ := json.Marshal(st.Key)
		b.WriteString(".")
		b.Write(k)
	}
	return b.String()
}
