package config

import (
	"errors"
	"fmt"
	"strings"
)

// JSONStep is one step of a parsed json_path.
type JSONStep struct {
	Key  string // object member to descend into; empty when Each is set
	Each bool   // "[*]": every element of an array
}

// ParseJSONPath parses a json_path: object keys separated by dots, each
// optionally followed by "[*]" for every element of an array, e.g. "cover",
// "files[*].path", "gallery[*].sizes[*].path", or "[*]" for a top-level array
// of strings. The path leads to string leaves, each one file path.
func ParseJSONPath(s string) ([]JSONStep, error) {
	if s == "" {
		return nil, errors.New("empty path")
	}
	var steps []JSONStep
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

// formatJSONPath renders steps back into json_path syntax.
func formatJSONPath(steps []JSONStep) string {
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
