package cdccleaner

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// NonCanonicalPattern is a regular expression that matches exactly the
// non-empty column values without a NUL byte that ValidatePath
// rejects: absolute ("/a.jpg"), not clean ("a//b.jpg", "./a.jpg",
// "a/./b.jpg", "a/", "."), or with a ".." segment. Every URL of the form
// scheme://host/... matches (it holds "//"). PostgreSQL (advanced regular
// expressions, with ~) and Go (RE2) read it alike: it uses only anchors,
// literal characters, an escaped dot, groups and alternation.
const NonCanonicalPattern = `^/|//|/$|(^|/)\.\.?(/|$)`

var nonCanonical = regexp.MustCompile(NonCanonicalPattern)

// NonCanonical reports whether a column value is a path spelled other than
// canonically: whether NonCanonicalPattern matches it. The empty value
// (no file) is not.
func NonCanonical(v string) bool { return nonCanonical.MatchString(v) }

// schemeAuthority matches the scheme and authority of a URL
// (RFC 3986: a scheme is a letter followed by letters, digits, "+", "-"
// or "."), up to where its path, query or fragment starts.
var schemeAuthority = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*`)

// CanonicalNames returns the canonical paths (those ValidatePath
// accepts) that a column value could name, shortest first. A canonical
// value names exactly itself; the empty value names nothing.
//
// A value that is not canonical (see NonCanonicalPattern) may be a path
// spelled differently ("./a.jpg", "sub//a.jpg", "/media/a.jpg"), or a URL
// of the file (http(s) with a host, an S3 bucket in the host or in the
// path, s3://bucket/key, with a query or a fragment), so it is read every
// way it could be meant, to err on the side of keeping files: as written
// and without the URL's scheme and authority, each with and without what
// follows a "?" or "#", each as written and percent-decoded (with "+" as
// itself and as a space); each of these is cleaned as path.Clean cleans a
// rooted path ("//" and "." segments dropped, ".." resolved, no leading
// "/"), and every suffix of it on a "/" boundary is a name, since the value
// may carry a base URL, a bucket or a prefix such as /media/ before the
// path the storage knows: "/media/x/a.jpg" names "a.jpg", "x/a.jpg" and
// "media/x/a.jpg".
//
// The names of a value share its memory where they can (suffixes are
// substrings), but there are as many as the value has "/"-separated
// segments, times the readings above: callers bound the values they pass.
func CanonicalNames(v string) []string {
	if v == "" {
		return nil
	}
	if ValidatePath(v) == nil {
		return []string{v}
	}
	var texts []string
	addText := func(s string) {
		texts = append(texts, s)
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			texts = append(texts, s[:i])
		}
	}
	addText(v)
	if loc := schemeAuthority.FindStringIndex(v); loc != nil {
		addText(v[loc[1]:])
	}
	seen := map[string]bool{}
	var names []string
	addForm := func(s string) {
		c := strings.TrimPrefix(path.Clean("/"+s), "/")
		if c == "" || seen[c] {
			return
		}
		// Every suffix on a "/" boundary, the whole first. A name cannot
		// hold a NUL byte (one may come from "%00"); a suffix after it can.
		for {
			if !seen[c] && strings.IndexByte(c, 0) < 0 {
				seen[c] = true
				names = append(names, c)
			}
			i := strings.IndexByte(c, '/')
			if i < 0 {
				return
			}
			c = c[i+1:]
		}
	}
	for _, t := range texts {
		addForm(t)
		if d, err := url.PathUnescape(t); err == nil && d != t {
			addForm(d)
		}
		if strings.Contains(t, "+") {
			if d, err := url.PathUnescape(strings.ReplaceAll(t, "+", " ")); err == nil {
				addForm(d)
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return names
}

// ExampleValue quotes a column value for a message, cut to 200 bytes.
func ExampleValue(v string) string {
	if len(v) <= 200 {
		return fmt.Sprintf("%q", v)
	}
	cut := 200
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", v[:cut], len(v))
}
