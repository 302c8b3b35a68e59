package discover

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// Ident writes a catalog name as the configuration reads it back
// (config.ParseIdentifier): bare when folding leaves it as it is, else
// double-quoted ("Name").
func Ident(name string) string {
	if plainIdent.MatchString(name) {
		return name
	}
	return config.QuoteIdentifier(name)
}

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// Table writes a column's table as a watch or protect entry names it:
// schema.table, each part as Ident writes it.
func Table(c cdccleaner.Column) string { return Ident(c.Schema) + "." + Ident(c.Table) }

// Name writes a column as messages name it: schema.table.column, each part
// as Ident writes it.
func Name(c cdccleaner.Column) string { return Table(c) + "." + Ident(c.Name) }

// yamlScalar writes s as a YAML scalar that reads back as the string s,
// in a block or a flow collection: plain when that is safe, else
// single-quoted, or double-quoted with escapes when s holds control
// characters.
func yamlScalar(s string) string {
	if plainScalar.MatchString(s) && !yamlKeywords[strings.ToLower(s)] {
		return s
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xfeff {
			return strconv.Quote(s) // YAML reads Go's escapes alike
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

var (
	plainScalar = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.$-]*$`)
	// yamlKeywords are plain scalars YAML 1.1 or 1.2 reads as something
	// else than a string.
	yamlKeywords = map[string]bool{"null": true, "true": true, "false": true, "yes": true, "no": true,
		"on": true, "off": true, "y": true, "n": true, "nan": true, "inf": true}
)

// Entry is a suggested protect entry: columns of one table whose files
// are in one storage, at one JSON path.
type Entry struct {
	Table       string // as the configuration writes it: public.blog_post
	Columns     []string
	JSONPath    cdccleaner.JSONPath
	StripPrefix []string
	Storage     string
}

// Flow writes the entry as one line of YAML: {table: ..., columns: [...],
// storage: ...}.
func (e Entry) Flow() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{table: %s, columns: [%s]", yamlScalar(e.Table), e.columnList())
	if e.JSONPath != nil {
		fmt.Fprintf(&b, ", json_path: %s", strconv.Quote(e.JSONPath.String()))
	}
	if len(e.StripPrefix) > 0 {
		fmt.Fprintf(&b, ", strip_prefix: [%s]", e.prefixList())
	}
	fmt.Fprintf(&b, ", storage: %s}", yamlScalar(e.Storage))
	return b.String()
}

func (e Entry) columnList() string {
	cols := make([]string, len(e.Columns))
	for i, c := range e.Columns {
		cols[i] = yamlScalar(c)
	}
	return strings.Join(cols, ", ")
}

func (e Entry) prefixList() string {
	ps := make([]string, len(e.StripPrefix))
	for i, p := range e.StripPrefix {
		ps[i] = yamlScalar(p)
	}
	return strings.Join(ps, ", ")
}

// block writes the entry as an item of a block sequence.
func (e Entry) block(w io.Writer) {
	fmt.Fprintf(w, "  - table: %s\n    columns: [%s]\n", yamlScalar(e.Table), e.columnList())
	if e.JSONPath != nil {
		fmt.Fprintf(w, "    json_path: %s\n", strconv.Quote(e.JSONPath.String()))
	}
	if len(e.StripPrefix) > 0 {
		fmt.Fprintf(w, "    strip_prefix: [%s]\n", e.prefixList())
	}
	fmt.Fprintf(w, "    storage: %s\n", yamlScalar(e.Storage))
}

// EntryOf is the protect entry that names f's column alone, with the
// prefix its values share before the path (a base URL, /media/) as
// strip_prefix.
func EntryOf(f Finding) Entry {
	e := Entry{Table: Table(f.Column), Columns: []string{Ident(f.Column.Name)}, JSONPath: f.Column.JSONPath, Storage: f.Column.Storage}
	if f.Spelled > 0 && f.Prefix != "" {
		e.StripPrefix = []string{f.Prefix}
	}
	return e
}

// Entries groups findings into protect entries: one per table, storage
// and JSON path, in the order the findings come.
func Entries(fs []Finding) []Entry {
	var out []Entry
	index := map[string]int{}
	for _, f := range fs {
		e := EntryOf(f)
		k := e.Table + "\x00" + e.Storage + "\x00" + e.JSONPath.String() + "\x00" + strconv.FormatBool(e.JSONPath != nil) + "\x00" + strings.Join(e.StripPrefix, "\x00")
		if i, ok := index[k]; ok {
			out[i].Columns = append(out[i].Columns, e.Columns...)
			continue
		}
		index[k] = len(out)
		out = append(out, e)
	}
	return out
}

// Summary says in one line what the sample of f found: "12 of 12 sampled
// paths exist in storage "media"".
func (f Finding) Summary() string {
	where := ""
	if f.Column.JSONPath != nil {
		where = " at " + f.Column.JSONPath.String()
	}
	return fmt.Sprintf("%s%s: %d of %d sampled paths exist in storage %q", Name(f.Column), where, f.Present, f.Paths, f.Column.Storage)
}

// Status says what the configuration makes of f's column.
func (f Finding) Status() string {
	c := f.Configured
	list := "watched"
	if c != nil && c.Protect {
		list = "protected"
	}
	switch {
	case c == nil:
		return "NOT configured: the reference check does not see it"
	case c.Storage != f.Column.Storage:
		return fmt.Sprintf("%s for storage %q, so the reference check of %q does not see it; a column is listed once", list, c.Storage, f.Column.Storage)
	case c.JSONPath.String() != f.Column.JSONPath.String():
		return fmt.Sprintf("already %s, with json_path %q", list, c.JSONPath.String())
	case f.Spelled > 0 && f.Prefix != "" && !slices.Contains(c.StripPrefix, f.Prefix):
		return fmt.Sprintf("already %s, but without strip_prefix %q: run compares its values with paths exactly", list, f.Prefix)
	}
	return "already " + list
}

// SpellingNote says, for a finding whose files exist under other names
// than the values (URLs, absolute paths), what that means; "" otherwise.
func (f Finding) SpellingNote() string {
	if f.Spelled == 0 {
		return ""
	}
	if f.Prefix != "" {
		return fmt.Sprintf("its values are URLs or absolute paths, not paths in the storage (%q is the file %q): its entry needs strip_prefix: [%s], which removes what precedes the path, or run compares values exactly and keeps no file from deletion", f.Example, f.Named, yamlScalar(f.Prefix))
	}
	return fmt.Sprintf("its values are URLs or absolute paths, not paths in the storage (%q is the file %q), with no prefix common to all: scan keeps the files they name, but run compares values exactly, so list under strip_prefix each text that precedes a path", f.Example, f.Named)
}

// WriteYAML writes the result as comments, one line per finding, then the
// protect entries of the unconfigured columns, ready to paste into the
// configuration.
func (r *Result) WriteYAML(w io.Writer) error {
	ew := &errWriter{w: w}
	storages := "storage"
	if len(r.Storages) != 1 {
		storages += "s"
	}
	fmt.Fprintf(ew, "# cdc-cleaner discover: %s sampled against %s %s (%s, %s)\n",
		r.Sampled(), storages, quoteList(r.Storages), plural(r.Lookups, "lookup"), r.Elapsed.Round(time.Millisecond))
	if len(r.Findings) == 0 {
		fmt.Fprintln(ew, "# no column references the storages")
	}
	unconfigured := r.Unconfigured()
	chosen := map[string]string{} // column -> the storage its entry names
	for _, f := range unconfigured {
		chosen[columnKey(f.Column)] = f.Column.Storage
	}
	for _, f := range r.Findings {
		fmt.Fprintf(ew, "# %s (%s)\n", oneLine(f.Summary()), oneLine(f.Status()))
		if st, ok := chosen[columnKey(f.Column)]; ok && st != f.Column.Storage {
			comment(ew, fmt.Sprintf("a column is listed once: its entry below names storage %q, where more of its sampled paths exist", st))
		}
		for _, p := range f.OtherPaths {
			fmt.Fprintf(ew, "#   sampled files exist at %s too; a column has one json_path\n", p.String())
		}
		if note := f.SpellingNote(); note != "" {
			comment(ew, note)
		}
	}
	for _, n := range r.Notes {
		comment(ew, "note: "+n)
	}
	if len(unconfigured) > 0 {
		fmt.Fprintln(ew, "#")
		fmt.Fprintln(ew, "# protect: keeps every file these columns reference, and deletes nothing when a")
		fmt.Fprintln(ew, "# value vanishes; list a column under watch: instead to also clean up after it.")
		fmt.Fprintln(ew, "protect:")
		for _, e := range Entries(unconfigured) {
			e.block(ew)
		}
	}
	return ew.err
}

// comment writes text as comment lines of at most about 100 characters,
// indented under the finding.
func comment(w io.Writer, text string) {
	line := "#  "
	for _, word := range strings.Fields(oneLine(text)) {
		if len(line) > 4 && len(line)+1+len(word) > 100 {
			fmt.Fprintln(w, line)
			line = "#  "
		}
		line += " " + word
	}
	fmt.Fprintln(w, line)
}

// oneLine keeps a catalog name's line breaks from ending a comment.
func oneLine(s string) string { return lineBreaks.Replace(s) }

var lineBreaks = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\u0085", `\u0085`, "\u2028", `\u2028`, "\u2029", `\u2029`)

// Sampled says how much of the database the search read: "812 columns
// of 300 tables".
func (r *Result) Sampled() string {
	return plural(r.Columns, "column") + " of " + plural(r.Tables, "table")
}

// plural writes n and noun, in the plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
