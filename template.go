package cdccleaner

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Template is a parsed path template (a watch or protect entry's `path`,
// or one of its `derived`): literal text and references to the row's text
// columns, `{col}` for the whole value or `{col[a:b]}` for its bytes a to b
// (Go slice rules, either bound optional). `{{` and `}}` are literal
// braces. The decoder renders it for old and new rows, the reference check
// and scan map a path back to column values with Reverse, so that an index
// on the column serves the check.
type Template struct {
	Source string // as configured, for messages
	Parts  []TemplatePart
}

// TemplatePart is literal text (Column empty) or a column reference.
type TemplatePart struct {
	Literal string
	Column  string // unquoted, as in pg_attribute
	// From and To are the byte bounds of a slice; To < 0 means the end
	// of the value. A whole value is From 0, To -1.
	From, To int
}

// Whole reports whether the part is a column's whole value.
func (p TemplatePart) Whole() bool { return p.Column != "" && p.From == 0 && p.To < 0 }

func (p TemplatePart) String() string {
	switch {
	case p.Column == "":
		return strings.NewReplacer("{", "{{", "}", "}}").Replace(p.Literal)
	case p.Whole():
		return "{" + p.Column + "}"
	case p.To < 0:
		return fmt.Sprintf("{%s[%d:]}", p.Column, p.From)
	default:
		return fmt.Sprintf("{%s[%d:%d]}", p.Column, p.From, p.To)
	}
}

// ParseTemplate parses s. ident turns the text naming a column into the
// column's name (the configuration's identifier rules: folded to lower
// case unless double-quoted); a quoted name may hold any character. Every
// column must appear at least once whole, so that a path can be mapped back
// to the values that render it, and a template names at least one column.
func ParseTemplate(s string, ident func(string) (string, error)) (Template, error) {
	t, err := parseTemplate(s, ident)
	if err != nil {
		return Template{}, err
	}
	whole := map[string]bool{}
	for _, p := range t.Parts {
		if p.Column != "" {
			whole[p.Column] = whole[p.Column] || p.Whole()
		}
	}
	for _, c := range t.Columns() {
		if !whole[c] {
			return Template{}, fmt.Errorf("%q: column %q appears only sliced; name it whole at least once ({%s}) so that a path can be mapped back to its row", s, c, c)
		}
	}
	return t, nil
}

// ParseDerivedTemplate parses a `derived` template: as ParseTemplate, but a
// column may appear only sliced (a derived path is rendered, never mapped
// back). A trailing "/" makes it a prefix (Template.Prefix).
func ParseDerivedTemplate(s string, ident func(string) (string, error)) (Template, error) {
	return parseTemplate(s, ident)
}

// Prefix reports whether the template ends in "/": it names everything
// below a directory or key prefix rather than one file.
func (t Template) Prefix() bool { return strings.HasSuffix(t.Source, "/") }

// parseTemplate parses s and requires it to name a column.
func parseTemplate(s string, ident func(string) (string, error)) (Template, error) {
	t := Template{Source: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.Parts = append(t.Parts, TemplatePart{Literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "{{"):
			lit.WriteByte('{')
			i += 2
		case strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte('}')
			i += 2
		case s[i] == '}':
			return Template{}, fmt.Errorf("%q: unbalanced } at offset %d (write }} for a literal brace)", s, i)
		case s[i] == '{':
			part, n, err := parseReference(s, i, ident)
			if err != nil {
				return Template{}, err
			}
			flush()
			t.Parts = append(t.Parts, part)
			i += n
		default:
			lit.WriteByte(s[i])
			i++
		}
	}
	flush()
	if len(t.Columns()) == 0 {
		return Template{}, fmt.Errorf("%q names no column; write {column} where a column's value goes, e.g. {key}", s)
	}
	return t, nil
}

// parseReference parses the reference starting with the { at s[i] and
// returns it with its length.
func parseReference(s string, i int, ident func(string) (string, error)) (TemplatePart, int, error) {
	j := i + 1
	if j < len(s) && s[j] == '"' {
		// A quoted name: up to the closing quote, "" being a quote.
		j++
		for {
			k := strings.IndexByte(s[j:], '"')
			if k < 0 {
				return TemplatePart{}, 0, fmt.Errorf("%q: unterminated quoted column name at offset %d", s, i+1)
			}
			j += k + 1
			if j < len(s) && s[j] == '"' {
				j++
				continue
			}
			break
		}
	} else {
		for j < len(s) && !strings.ContainsRune("{}[]:", rune(s[j])) {
			j++
		}
	}
	raw := s[i+1 : j]
	if raw == "" {
		return TemplatePart{}, 0, fmt.Errorf("%q: empty column name at offset %d", s, i+1)
	}
	name, err := ident(raw)
	if err != nil {
		return TemplatePart{}, 0, fmt.Errorf("%q: column %s: %w", s, raw, err)
	}
	part := TemplatePart{Column: name, From: 0, To: -1}
	if j < len(s) && s[j] == '[' {
		end := strings.IndexByte(s[j:], ']')
		if end < 0 {
			return TemplatePart{}, 0, fmt.Errorf("%q: unterminated [ at offset %d", s, j)
		}
		from, to, err := parseSlice(s[j+1 : j+end])
		if err != nil {
			return TemplatePart{}, 0, fmt.Errorf("%q: slice [%s] of %s: %w", s, s[j+1:j+end], raw, err)
		}
		part.From, part.To = from, to
		j += end + 1
	}
	if j >= len(s) || s[j] != '}' {
		return TemplatePart{}, 0, fmt.Errorf("%q: unbalanced { at offset %d: expected } after the column name%s", s, i, sliceHint(s, j))
	}
	return part, j + 1 - i, nil
}

func sliceHint(s string, j int) string {
	if j < len(s) && s[j] == ':' {
		return " (a slice is written {col[a:b]})"
	}
	return ""
}

// parseSlice parses "a:b", "a:", ":b" or ":" into bounds (to -1: the end).
func parseSlice(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, errors.New("write [a:b], [a:] or [:b] with byte offsets")
	}
	bound := func(v string, dflt int) (int, error) {
		if v == "" {
			return dflt, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || strings.HasPrefix(v, "+") {
			return 0, fmt.Errorf("%q is not a byte offset (a whole number, 0 or more)", v)
		}
		return n, nil
	}
	if from, err = bound(a, 0); err != nil {
		return 0, 0, err
	}
	if to, err = bound(b, -1); err != nil {
		return 0, 0, err
	}
	if to >= 0 && from > to {
		return 0, 0, fmt.Errorf("out of order: %d is after %d", from, to)
	}
	return from, to, nil
}

// Columns returns the columns the template names, each once, in the order
// of their first appearance.
func (t Template) Columns() []string {
	var out []string
	for _, p := range t.Parts {
		if p.Column != "" && !slices.Contains(out, p.Column) {
			out = append(out, p.Column)
		}
	}
	return out
}

// String returns the template in its canonical spelling.
func (t Template) String() string {
	var b strings.Builder
	for _, p := range t.Parts {
		b.WriteString(p.String())
	}
	return b.String()
}

// Render returns the path the template gives for the row whose columns
// value returns (ok false: NULL). A NULL or empty column, a slice outside
// its value, or a slice that cuts a character in two (the result is not
// UTF-8, which no database text can hold, so no row could be found by it
// again) means the row has no file: ok is false.
func (t Template) Render(value func(col string) (string, bool)) (string, bool) {
	var b strings.Builder
	for _, p := range t.Parts {
		if p.Column == "" {
			b.WriteString(p.Literal)
			continue
		}
		v, ok := value(p.Column)
		if !ok || v == "" {
			return "", false
		}
		s, ok := p.slice(v)
		if !ok {
			return "", false
		}
		b.WriteString(s)
	}
	if !utf8.ValidString(b.String()) {
		return "", false
	}
	return b.String(), true
}

// slice returns the part of v the reference takes.
func (p TemplatePart) slice(v string) (string, bool) {
	to := p.To
	if to < 0 {
		to = len(v)
	}
	if p.From > len(v) || to > len(v) {
		return "", false
	}
	return v[p.From:to], true
}

// maxReverseSteps bounds the search of Reverse: a template whose columns
// follow each other with nothing between them can split a long path in
// very many ways.
const maxReverseSteps = 10_000

// Reverse returns every assignment of values to the template's columns
// that renders path, each once (as a map from column to value), up to
// limit of them. complete is false when there may be more than it
// returned (more than limit, or a search too long to finish): a caller
// deciding whether a file is referenced must then keep it. A path that the
// template cannot produce gives none, complete.
func (t Template) Reverse(path string, limit int) (values []map[string]string, complete bool) {
	r := reverser{t: t, path: path, assign: map[string]string{}, seen: map[string]bool{}, limit: limit}
	r.match(0, 0)
	return r.out, !r.overflow
}

type reverser struct {
	t        Template
	path     string
	assign   map[string]string
	out      []map[string]string
	seen     map[string]bool // out, encoded by key
	limit    int
	steps    int
	overflow bool
}

// match tries to render path[pos:] from the parts from i on, with the
// columns assigned so far.
func (r *reverser) match(i, pos int) {
	if r.overflow {
		return
	}
	if r.steps++; r.steps > maxReverseSteps {
		r.overflow = true
		return
	}
	if i == len(r.t.Parts) {
		if pos == len(r.path) {
			r.found()
		}
		return
	}
	p := r.t.Parts[i]
	rest := r.path[pos:]
	switch {
	case p.Column == "":
		if strings.HasPrefix(rest, p.Literal) {
			r.match(i+1, pos+len(p.Literal))
		}
	case !p.Whole():
		// A slice is checked once every column has its value; here only
		// its length is known when both bounds are given.
		if p.To >= 0 {
			if n := p.To - p.From; n <= len(rest) {
				r.match(i+1, pos+n)
			}
			return
		}
		r.eachEnd(i, pos, func(end int) { r.match(i+1, end) })
	default:
		if v, ok := r.assign[p.Column]; ok {
			if strings.HasPrefix(rest, v) {
				r.match(i+1, pos+len(v))
			}
			return
		}
		r.eachEnd(i, pos, func(end int) {
			if end == pos {
				return // a whole value is never empty
			}
			r.assign[p.Column] = r.path[pos:end]
			r.match(i+1, end)
			delete(r.assign, p.Column)
		})
	}
}

// eachEnd calls fn with every place where the variable-length part i
// starting at pos may end: where the literal after it occurs, the end of
// the path when it is last, or anywhere when another column follows it
// directly. Every place counts as a step of the search.
func (r *reverser) eachEnd(i, pos int, fn func(end int)) {
	try := func(end int) bool {
		if r.steps++; r.steps > maxReverseSteps {
			r.overflow = true
		}
		if r.overflow {
			return false
		}
		fn(end)
		return !r.overflow
	}
	if i+1 == len(r.t.Parts) {
		try(len(r.path))
		return
	}
	if next := r.t.Parts[i+1]; next.Column == "" {
		for at := pos; at <= len(r.path); {
			k := strings.Index(r.path[at:], next.Literal)
			if k < 0 || !try(at+k) {
				return
			}
			at += k + 1
		}
		return
	}
	for end := pos; end <= len(r.path); end++ {
		if !try(end) {
			return
		}
	}
}

// found records the current assignment if it renders the path (the
// slices, skipped in the search, agree with the whole values).
func (r *reverser) found() {
	got, ok := r.t.Render(func(col string) (string, bool) {
		v, ok := r.assign[col]
		return v, ok
	})
	if !ok || got != r.path {
		return
	}
	key := r.key()
	if r.seen[key] {
		return
	}
	if len(r.out) == r.limit {
		r.overflow = true
		return
	}
	found := make(map[string]string, len(r.assign))
	for k, v := range r.assign {
		found[k] = v
	}
	r.out = append(r.out, found)
	r.seen[key] = true
}

// key encodes the current assignment, column by column in the template's
// order, each value with its length.
func (r *reverser) key() string {
	var b strings.Builder
	for _, c := range r.t.Columns() {
		v := r.assign[c]
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}
