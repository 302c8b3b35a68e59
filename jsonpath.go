package cdccleaner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// selects the document itself. Of an object's duplicate keys the last one
// counts, as in jsonb.
//
// Any document PostgreSQL accepts as json or jsonb is read: numbers of any
// size or precision (1e400, a 400-digit integer) are skipped, not converted,
// and nesting has no depth limit. doc must hold exactly one JSON value,
// surrounded by nothing but whitespace.
func (steps JSONPath) Strings(doc []byte) ([]string, error) {
	// Token by token: the tokenizer keeps its own stack, so it has no depth
	// limit (json.Unmarshal and Decoder.Decode stop at 10000 levels, which
	// PostgreSQL exceeds), and UseNumber keeps numbers as text instead of
	// failing on those a float64 cannot hold.
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	w := jsonWalker{dec: dec}
	if err := w.value(steps); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("parse json: %w", err)
	}
	switch tok, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return w.out, nil
	case err != nil:
		return nil, fmt.Errorf("parse json: after the document: %w", err)
	default:
		return nil, fmt.Errorf("parse json: data after the document: %v", tok)
	}
}

// jsonWalker collects the string leaves at a path from a token stream.
type jsonWalker struct {
	dec *json.Decoder
	out []string
}

// value reads one JSON value and collects its string leaves at rest.
// Recursion follows the path only (so its depth is bounded by the path's
// length); whatever lies off the path is skipped without recursion.
func (w *jsonWalker) value(rest JSONPath) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	d, isDelim := tok.(json.Delim)
	switch {
	case !isDelim:
		if s, ok := tok.(string); ok && s != "" && len(rest) == 0 {
			w.out = append(w.out, s)
		}
		return nil
	case len(rest) > 0 && rest[0].Each && d == '[':
		for w.dec.More() {
			if err := w.value(rest[1:]); err != nil {
				return err
			}
		}
		return w.end(']')
	case len(rest) > 0 && !rest[0].Each && d == '{':
		start, found := 0, false
		for w.dec.More() {
			tok, err := w.dec.Token()
			if err != nil {
				return err
			}
			key, ok := tok.(string)
			if !ok {
				return fmt.Errorf("object key %v is not a string", tok)
			}
			if key != rest[0].Key {
				if err := w.skip(); err != nil {
					return err
				}
				continue
			}
			if found {
				// A later duplicate key replaces the earlier one, as in
				// jsonb (and as json.Unmarshal into a map did).
				w.out = w.out[:start]
			}
			start, found = len(w.out), true
			if err := w.value(rest[1:]); err != nil {
				return err
			}
		}
		return w.end('}')
	default:
		// An array or object where the path wants something else.
		return w.skipRest()
	}
}

// skip reads one value and discards it.
func (w *jsonWalker) skip() error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if _, ok := tok.(json.Delim); ok {
		return w.skipRest()
	}
	return nil
}

// skipRest discards the rest of an array or object whose opening delimiter
// has been read. The tokenizer checks that the delimiters match.
func (w *jsonWalker) skipRest() error {
	for depth := 1; depth > 0; {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
	return nil
}

// end reads the closing delimiter of the array or object being read.
func (w *jsonWalker) end(want json.Delim) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
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
