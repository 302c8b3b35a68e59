package provision

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// A name written `table: "LegacyDoc"` in YAML is the string LegacyDoc,
// which the configuration folds to legacydoc as SQL folds an unquoted name;
// the SQL-quoted form is '"LegacyDoc"'. When a watched table or column is
// not found, these hints look for names that differ from it only in case
// and say how to write them. They are advice, not checks: the problem is
// reported either way, and a lookup that fails only leaves the hint out.

// tableCaseHint returns a hint for entry w, whose table does not exist:
// the tables whose schema and name differ from it only in case, or else a
// schema that does; "" when there are none.
func tableCaseHint(ctx context.Context, conn Querier, w *config.Watch) string {
	rows, err := conn.Query(ctx, `SELECT n.nspname::text, c.relname::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2) AND c.relkind IN ('r', 'p')
		ORDER BY 1, 2`, w.Schema, w.Name)
	if err != nil {
		return ""
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]string, error) {
		var t [2]string
		err := row.Scan(&t[0], &t[1])
		return t, err
	})
	if err != nil {
		return ""
	}
	// A table the file does not qualify is suggested unqualified when it
	// is in public, as the file has it.
	_, err = config.ParseIdentifier(w.Table)
	unqualified := err == nil
	var names []string
	for _, t := range tables {
		name := config.FormatIdentifier(t[1])
		if !unqualified || t[0] != "public" {
			name = config.FormatIdentifier(t[0]) + "." + name
		}
		names = append(names, name)
	}
	if len(names) > 0 {
		return didYouMean(names, w.Table, func(v string) string { return "table: " + v })
	}

	rows, err = conn.Query(ctx, `SELECT nspname::text FROM pg_namespace WHERE lower(nspname) = lower($1) ORDER BY 1`, w.Schema)
	if err != nil {
		return ""
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(schemas) == 0 || slices.Contains(schemas, w.Schema) {
		return ""
	}
	var shown []string
	for _, s := range schemas {
		shown = append(shown, yamlValue(config.FormatIdentifier(s)))
	}
	hint := fmt.Sprintf("schema %s does not exist either, but schema %s does", w.Schema, orList(shown))
	if len(schemas) == 1 && !strings.Contains(w.Table, `"`) && strings.Contains(shown[0], `"`) {
		written := yamlValue(config.FormatIdentifier(schemas[0]) + "." + config.FormatIdentifier(w.Name))
		hint += fmt.Sprintf(" (YAML quotes are not SQL quotes: write table: %s to keep its capitals)", written)
	}
	return hint
}

// columnCaseHint returns a hint for column col of table oid, which does not
// exist: the columns whose names differ from it only in case, as written
// in the file (raw); "" when there are none.
func columnCaseHint(ctx context.Context, conn Querier, oid uint32, col, raw string) string {
	rows, err := conn.Query(ctx, `SELECT attname::text FROM pg_attribute
		WHERE attrelid = $1 AND lower(attname) = lower($2) AND attnum > 0 AND NOT attisdropped
		ORDER BY 1`, oid, col)
	if err != nil {
		return ""
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(cols) == 0 {
		return ""
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = config.FormatIdentifier(c)
	}
	return didYouMean(names, raw, func(v string) string { return v + " in columns" })
}

// didYouMean suggests names (as the configuration writes them) for a name
// written raw in the file. When a suggestion needs SQL quotes that raw
// lacks, it says how to write them in YAML; write shows a value in place
// ("table: " + v).
func didYouMean(names []string, raw string, write func(v string) string) string {
	shown := make([]string, len(names))
	quoted := false
	for i, n := range names {
		shown[i] = yamlValue(n)
		quoted = quoted || strings.Contains(n, `"`)
	}
	hint := "did you mean " + orList(shown) + "?"
	switch {
	case !quoted || strings.Contains(raw, `"`):
	case len(shown) == 1:
		hint += fmt.Sprintf(" (YAML quotes are not SQL quotes: write %s to keep the capitals)", write(shown[0]))
	default:
		hint += " (YAML quotes are not SQL quotes: write one of them as shown, single quotes and all, to keep the capitals)"
	}
	return hint
}

// orList joins items as "a", "a or b", "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

var plainYAMLRE = regexp.MustCompile(`^[\p{L}_][\p{L}\p{N}_$.]*$`)

// yamlValue writes s as a YAML scalar that reads back as s: bare when it
// is a plain name, in single quotes otherwise ('"LegacyDoc"').
func yamlValue(s string) string {
	if plainYAMLRE.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
