package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// truncated by the server, which would make names in the configuration
// differ from names in the catalog.
const maxIdentifierLen = 63

// ParseIdentifier parses one SQL identifier the way PostgreSQL does: an
// unquoted identifier is folded to lower case, a double-quoted one is kept
// exactly, with "" standing for one double quote. Surrounding white space is
// ignored. It returns the name as stored in the catalog.
func ParseIdentifier(s string) (string, error) {
	t := strings.TrimSpace(s)
	name, n, err := scanIdentifier(t)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if rest := t[n:]; rest != "" {
		return "", fmt.Errorf("%q: unexpected %q after the name; write names with spaces or dots in double quotes", s, rest)
	}
	return name, nil
}

// ParseQualifiedName parses a table name that may be qualified by a schema:
// "public.gallery_photo", `"My Schema"."Photo Table"`, `"a""b".c`. Each part
// follows ParseIdentifier; an unqualified name is in schema "public".
func ParseQualifiedName(s string) (schema, name string, err error) {
	t := strings.TrimSpace(s)
	first, n, err := scanIdentifier(t)
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	rest := strings.TrimLeft(t[n:], " \t")
	if rest == "" {
		return "public", first, nil
	}
	if rest[0] != '.' {
		return "", "", fmt.Errorf("%q: unexpected %q after the name; write names with spaces or dots in double quotes", s, rest)
	}
	rest = strings.TrimLeft(rest[1:], " \t")
	second, n, err := scanIdentifier(rest)
	if err != nil {
		return "", "", fmt.Errorf("%q: table name: %w", s, err)
	}
	if rest = strings.TrimSpace(rest[n:]); rest != "" {
		if rest[0] == '.' {
			return "", "", fmt.Errorf("%q: too many parts; write schema.table", s)
		}
		return "", "", fmt.Errorf("%q: unexpected %q after the name; write names with spaces or dots in double quotes", s, rest)
	}
	return first, second, nil
}

// QuoteIdentifier returns s as a double-quoted SQL identifier, doubling any
// double quote inside it, so that it is safe to put into SQL text and means
// exactly s (pgx.Identifier.Sanitize). NUL bytes, which PostgreSQL
// identifiers cannot hold, are dropped.
func QuoteIdentifier(s string) string { return pgx.Identifier{s}.Sanitize() }

// FormatIdentifier returns name as the configuration writes it, so that
// ParseIdentifier reads it back as name: bare when it is a lower-case
// identifier, double-quoted as by QuoteIdentifier otherwise. It is what to
// suggest to a user who wrote a name in the wrong case.
func FormatIdentifier(name string) string {
	if got, n, err := scanIdentifier(name); err == nil && n == len(name) && got == name {
		return name
	}
	return QuoteIdentifier(name)
}

// scanIdentifier reads one identifier from the start of s and returns it as
// stored in the catalog and the number of bytes of s it used.
func scanIdentifier(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty name")
	}
	var name string
	var n int
	if s[0] == '"' {
		var b strings.Builder
		i := 1
		for {
			j := strings.IndexByte(s[i:], '"')
			if j < 0 {
				return "", 0, errors.New("unterminated double quote")
			}
			b.WriteString(s[i : i+j])
			i += j + 1
			if i < len(s) && s[i] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			break
		}
		name, n = b.String(), i
		if name == "" {
			return "", 0, errors.New(`empty quoted name ""`)
		}
	} else {
		if !identStart(s[0]) {
			return "", 0, fmt.Errorf("a name cannot start with %q; write it in double quotes", s[0])
		}
		i := 1
		for i < len(s) && identCont(s[i]) {
			i++
		}
		name, n = foldASCII(s[:i]), i
	}
	switch {
	case strings.IndexByte(name, 0) >= 0:
		return "", 0, errors.New("name contains a NUL byte")
	case !utf8.ValidString(name):
		return "", 0, errors.New("name is not valid UTF-8")
	case len(name) > maxIdentifierLen:
		return "", 0, fmt.Errorf("name is %d bytes long; PostgreSQL allows at most %d", len(name), maxIdentifierLen)
	}
	return name, n, nil
}

// identStart and identCont follow PostgreSQL's scanner: letters, underscore
// and any non-ASCII byte start an identifier; digits and $ may follow.
func identStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func identCont(c byte) bool {
	return identStart(c) || c >= '0' && c <= '9' || c == '$'
}

// foldASCII lower-cases ASCII letters only, as PostgreSQL does for unquoted
// identifiers in multi-byte encodings.
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
