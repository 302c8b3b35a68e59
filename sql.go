package cdccleaner

import "strings"

// QuoteLiteral returns s as an SQL string literal that means exactly s
// whatever the server's standard_conforming_strings: single quotes are
// doubled and, when s holds a backslash, the literal is written in the
// escape form (E'...') with backslashes doubled, as PostgreSQL's own
// quote_literal does. NUL bytes, which a text value cannot hold, are
// dropped.
func QuoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}
