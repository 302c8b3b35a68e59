package config

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RedactedPassword replaces passwords in redacted connection strings.
const RedactedPassword = "xxxxx"

// UnparsableRedacted is what RedactURL returns for a connection string it
// cannot parse, since it cannot tell where the password is.
const UnparsableRedacted = "<unparsable URL redacted>"

// secretKeys are connection parameters whose values are never shown.
var secretKeys = []string{"password", "sslpassword"}

func isSecretKey(k string) bool {
	for _, s := range secretKeys {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// RedactURL returns a PostgreSQL connection string fit for logs and error
// messages: the password, in URL form ("postgres://user:pass@host/db",
// including a password= query parameter) or key/value form
// ("host=x password=secret"), is replaced with "xxxxx". A string it cannot
// parse comes back as UnparsableRedacted, never as itself.
func RedactURL(u string) string {
	switch {
	case u == "":
		return ""
	case strings.Contains(u, "://"):
		r, err := redactURLForm(u)
		if err != nil {
			return UnparsableRedacted
		}
		return r
	default:
		pairs, err := scanKeyValues(u)
		if err != nil {
			return UnparsableRedacted
		}
		var b strings.Builder
		last := 0
		for _, p := range pairs {
			if isSecretKey(p.key) {
				b.WriteString(u[last:p.start])
				b.WriteString(RedactedPassword)
				last = p.end
			}
		}
		b.WriteString(u[last:])
		return b.String()
	}
}

func redactURLForm(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Opaque != "" {
		return "", errors.New("opaque URL")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), RedactedPassword)
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				return "", err
			}
			if isSecretKey(key) {
				parts[i] = k + "=" + RedactedPassword
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.String(), nil
}

// kvPair is one key=value setting of a libpq key/value connection string;
// start and end delimit the value as written (with its quotes, if any).
type kvPair struct {
	key        string
	start, end int
}

// scanKeyValues splits a libpq key/value connection string
// ("host=db port=5432 password='a b'") as libpq's conninfo_parse does.
func scanKeyValues(s string) ([]kvPair, error) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	var pairs []kvPair
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		k := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[k:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if key == "" || i == len(s) || s[i] != '=' {
			return nil, errors.New("missing = after a key")
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		start := i
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated quoted value")
				}
				if s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					i++
					break
				}
				i++
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i > len(s) {
				i = len(s)
			}
		}
		pairs = append(pairs, kvPair{key: key, start: start, end: i})
	}
	if len(pairs) == 0 {
		return nil, errors.New("no settings")
	}
	return pairs, nil
}

// connSecrets returns the passwords in connection string s, as written and
// decoded; best effort when s does not parse.
func connSecrets(s string) []string {
	var out []string
	add := func(v string) {
		out = append(out, v)
		if u, err := url.PathUnescape(v); err == nil {
			out = append(out, u)
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			out = append(out, v[1:len(v)-1])
		}
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		if u, err := url.Parse(s); err == nil {
			if p, ok := u.User.Password(); ok {
				add(p)
			}
			for k, vs := range u.Query() {
				if isSecretKey(k) {
					for _, v := range vs {
						add(v)
					}
				}
			}
		}
		// user:password@host, with @ (first or last) possibly in the password
		for _, i := range []int{strings.Index(rest, "@"), strings.LastIndex(rest, "@")} {
			if i >= 0 {
				if _, p, ok := strings.Cut(rest[:i], ":"); ok {
					add(p)
				}
			}
		}
	}
	if pairs, err := scanKeyValues(s); err == nil {
		for _, p := range pairs {
			if isSecretKey(p.key) {
				add(s[p.start:p.end])
			}
		}
	} else {
		// password=value up to the next white space, quoted or not
		lower := strings.ToLower(s)
		for i := 0; ; {
			j := strings.Index(lower[i:], "password")
			if j < 0 {
				break
			}
			i += j + len("password")
			v := strings.TrimLeft(s[i:], " \t")
			if v, ok := strings.CutPrefix(v, "="); ok {
				v = strings.TrimLeft(v, " \t")
				if strings.HasPrefix(v, "'") {
					add(v)
					add(v[1:])
				}
				if k := strings.IndexAny(v, " \t\n"); k >= 0 {
					v = v[:k]
				}
				add(v)
			}
		}
	}
	out = slices.DeleteFunc(out, func(v string) bool { return v == "" })
	// Longest first, so that no part of a longer secret is left behind.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// redactedError hides secrets in the message of the error it wraps.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, RedactedPassword)
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err, wrapped so that its message shows none of
// secrets, as written or as strconv.Quote escapes them inside a quoted
// value ("a\"b").
func redactError(err error, secrets []string) error {
	var all []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		all = append(all, s)
		if q := strconv.Quote(s); q[1:len(q)-1] != s {
			all = append(all, q[1:len(q)-1])
		}
	}
	msg := err.Error()
	for _, s := range all {
		if strings.Contains(msg, s) {
			// Longest first, so that no part of a longer secret is left behind.
			slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
			return &redactedError{err: err, secrets: slices.Compact(all)}
		}
	}
	return err
}

// configSecrets returns the passwords no error about a configuration may
// show: those of postgres.url in document doc (nil when there is none) and
// of every setting of the variables that can set it. It needs only the
// parsed document, so that even the messages written before it is decoded
// are redacted.
func configSecrets(doc *yaml.Node, environ []string) []string {
	var out []string
	for _, u := range postgresURLs(doc) {
		out = append(out, connSecrets(u)...)
	}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || name == EnvPrefix+"POSTGRES_URL" {
			out = append(out, connSecrets(value)...)
		}
	}
	return out
}

// postgresURLs returns the values of postgres.url in document doc: every
// one, with aliases and merges resolved, since a document with an error
// may set it more than once.
func postgresURLs(doc *yaml.Node) []string {
	if doc == nil {
		return nil
	}
	root := resolveAlias(doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) != 1 {
			return nil
		}
		root = resolveAlias(root.Content[0])
	}
	var out []string
	for _, pg := range mappingValues(root, "postgres") {
		for _, u := range mappingValues(pg, "url") {
			if u.Kind == yaml.ScalarNode {
				out = append(out, u.Value)
			}
		}
	}
	return out
}

// mappingValues returns the values of key in mapping n, aliases resolved.
func mappingValues(n *yaml.Node, key string) []*yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []*yaml.Node
	for _, e := range mappingEntries(n) {
		if e.key.Kind == yaml.ScalarNode && e.key.Value == key {
			out = append(out, resolveAlias(e.value))
		}
	}
	return out
}

// redactValue returns value s as an error message may quote it: itself, or,
// when it looks like a connection string (a URL, or key/value settings with
// a password), with its password hidden as RedactURL hides it. A value
// quoted in a message may be a connection string put in the wrong place,
// with a password that is not the one of postgres.url.
func redactValue(s string) string {
	lower := strings.ToLower(s)
	if strings.Contains(s, "://") || strings.Contains(lower, "password") && strings.Contains(s, "=") {
		return RedactURL(s)
	}
	return s
}
