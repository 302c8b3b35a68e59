package provision

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// inspectConfig watches a text column and a text[] column of one table.
const inspectConfig = `postgres:
  url: postgres://cleaner@127.0.0.1:5432/app
storages:
  media:
    type: local
    root: /srv/app/media
watch:
  - table: public.doc
    columns: [file, files]
    storage: media
`

func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cdc-cleaner.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// healthyCatalog answers Inspect's queries for inspectConfig as a database
// that is ready would, with public.doc of relkind relkind ("r" or "p").
func healthyCatalog(relkind string) []answer {
	const docOID, textOID, textArrayOID = uint32(16384), uint32(25), uint32(1009)
	return []answer{
		{match: "current_setting('max_wal_senders')", rows: [][]any{{150000, "logical", "10", "10", "1GB", "cleaner", true, true}}},
		{match: "SELECT pg_is_in_recovery()", rows: [][]any{{false}}},
		// inspectEntries
		{match: "c.relreplident::text, has_schema_privilege", rows: [][]any{{docOID, relkind, "f", true}}},
		{match: "FROM pg_inherits", rows: [][]any{{nil}}},
		{match: "FROM pg_partition_tree($1)", rows: [][]any{{nil}}},
		{match: "FROM pg_event_trigger WHERE evtname = $1 AND evtenabled", rows: [][]any{{true}}},
		{match: "SELECT attname FROM pg_attribute WHERE attrelid = $1", rows: [][]any{{"id"}, {"file"}, {"files"}}},
		{match: "format_type(a.atttypid, a.atttypmod)", byArgs: func(args []any) [][]any {
			if args[1] == "files" {
				return [][]any{{"text[]", "", textArrayOID, int16(3), false, true}}
			}
			return [][]any{{"text", "", textOID, int16(2), true, true}}
		}},
		{match: "FROM pg_type WHERE oid = ANY", rows: [][]any{{textOID, "b", uint32(0), "S", uint32(0)}, {textArrayOID, "b", uint32(0), "A", textOID}}},
		{match: "am.amname = 'gin'", rows: [][]any{{true}}},
		// inspectPublication
		{match: "p.pubinsert, p.pubupdate, p.pubdelete", rows: [][]any{{uint32(1), true, true, true, true, true, false, true}}},
		{match: "FROM pg_publication_tables", rows: [][]any{{"public.doc"}}},
		{match: "FROM pg_publication_rel pr", rows: nil},
		// inspectEventTrigger
		{match: "FROM pg_event_trigger e JOIN pg_proc", rows: nil},
		// inspectSlot
		{match: "FROM pg_replication_slots WHERE slot_name", rows: [][]any{{"pgoutput", "app", nil, int64(100)}}},
		{match: "SELECT current_database()", rows: [][]any{{"app"}}},
		{match: "c.relname = 'slots'", rows: [][]any{{true}}},
		{match: "FROM cdc_cleaner.slots WHERE slot_name", rows: [][]any{{true}}},
		// inspectFailover: no standby
		{match: "WHERE slot_type = 'physical' ORDER BY 1", rows: nil},
		{match: "FROM pg_stat_replication r", rows: [][]any{{0}}},
		// inspectOwnObjects
		{match: "FROM pg_namespace WHERE nspname = 'cdc_cleaner'", rows: [][]any{{true}}},
		{match: "c.relname = 'failed_deletions'", rows: [][]any{{true, "cdc_cleaner.failed_deletions_id_seq", true}}},
		{match: "failed_deletions_once_idx", rows: [][]any{{true}}},
		{match: "c.relname = 'journal'", rows: [][]any{{true, true, true}}},
		{match: "p.proname = 'try_jsonb'", rows: nil},
	}
}

// TestInspectHealthyCatalog keeps the fake catalog honest: it describes a
// database with nothing to report.
func TestInspectHealthyCatalog(t *testing.T) {
	r, err := Inspect(context.Background(), &fakeDB{t: t, answers: healthyCatalog("r")}, loadConfig(t, inspectConfig))
	if err != nil {
		t.Fatal(err)
	}
	if p, w := r.Problems(), r.Warnings(); len(p)+len(w) > 0 {
		t.Fatalf("problems %q, warnings %q; want none", p, w)
	}
	if len(r.Columns) != 2 {
		t.Errorf("columns %+v, want file and files", r.Columns)
	}
}

// TestInspectReportsPublicationWithoutInsert: a publication that does not
// publish inserts (an earlier version of setup made it) is a problem that
// setup fixes; run refuses to start on it.
func TestInspectReportsPublicationWithoutInsert(t *testing.T) {
	old := answer{match: "p.pubinsert, p.pubupdate, p.pubdelete", rows: [][]any{{uint32(1), false, true, true, true, true, false, true}}}
	db := &fakeDB{t: t, answers: append([]answer{old}, healthyCatalog("r")...)}
	r, err := Inspect(context.Background(), db, loadConfig(t, inspectConfig))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range r.Problems() {
		if strings.Contains(f.Message, "does not publish insert") {
			found = true
			if f.Code != CodePublication || !strings.Contains(f.Message, "run cdc-cleaner setup") {
				t.Errorf("finding %q has code %q; want %q and the setup hint", f, f.Code, CodePublication)
			}
		}
	}
	if !found {
		t.Fatalf("no problem about the publication's inserts; findings:\n%s", findingLines(r))
	}
}

// TestInspectReportsTheJournal: a schema from before the journal is a
// problem setup fixes (run refuses to start on it), and a role that may not
// write, read or prune the journal is told what to grant.
func TestInspectReportsTheJournal(t *testing.T) {
	tests := []struct {
		name string
		rows [][]any
		want string
	}{
		{"missing", nil, "table cdc_cleaner.journal does not exist (the schema is from an earlier version): run cdc-cleaner setup"},
		{"no privileges", [][]any{{false, true, false}}, "may not INSERT, DELETE on cdc_cleaner.journal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{t: t, answers: append([]answer{{match: "c.relname = 'journal'", rows: tt.rows}}, healthyCatalog("r")...)}
			r, err := Inspect(context.Background(), db, loadConfig(t, inspectConfig))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range r.Problems() {
				if strings.Contains(f.Message, tt.want) && f.Code == CodeCleanerSchema {
					return
				}
			}
			t.Fatalf("no problem saying %q; findings:\n%s", tt.want, findingLines(r))
		})
	}
}

// TestInspectReportsFailedQueries: a catalog query that fails inside
// Inspect is a finding that names what could not be checked and the
// error, never an empty or false answer that passes (or fails) the check
// quietly.
func TestInspectReportsFailedQueries(t *testing.T) {
	tests := []struct {
		name     string
		relkind  string
		fail     answer
		severity Severity
		code     Code
		says     string // what the finding names, besides the error
		unwanted string // what a false answer would have reported
	}{
		{name: "standby", fail: answer{match: "SELECT pg_is_in_recovery()", err: errInjected},
			severity: Problem, code: CodeStandby, says: "standby"},
		{name: "replica identity", fail: answer{match: "SELECT attname FROM pg_attribute WHERE attrelid = $1", err: errInjected},
			severity: Problem, code: CodeReplicaIdentity, says: `replica identity of "public"."doc"`, unwanted: "lacks REPLICA IDENTITY FULL"},
		{name: "replica identity rows", fail: answer{match: "SELECT attname FROM pg_attribute WHERE attrelid = $1", rows: [][]any{{"id"}}, rowsErr: errInjected},
			severity: Problem, code: CodeReplicaIdentity, says: `replica identity of "public"."doc"`, unwanted: "lacks REPLICA IDENTITY FULL"},
		{name: "inheritance children", fail: answer{match: "FROM pg_inherits", err: errInjected},
			severity: Warning, code: CodeUnchecked, says: "inheritance children"},
		{name: "event trigger of a partitioned table", relkind: "p", fail: answer{match: "FROM pg_event_trigger WHERE evtname = $1 AND evtenabled", err: errInjected},
			severity: Warning, code: CodeUnchecked, says: "event trigger"},
		{name: "partitions of a partitioned table", relkind: "p", fail: answer{match: "FROM pg_partition_tree($1)", err: errInjected},
			severity: Problem, code: CodeUnchecked, says: "list partitions of"},
		{name: "GIN index", fail: answer{match: "am.amname = 'gin'", err: errInjected},
			severity: Warning, code: CodeUnchecked, says: "GIN index", unwanted: "no GIN index"},
		{name: "database of the slot", fail: answer{match: "SELECT current_database()", err: errInjected},
			severity: Problem, code: CodeSlot, says: `slot "cdc_cleaner"`, unwanted: "belongs to database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			relkind := tt.relkind
			if relkind == "" {
				relkind = "r"
			}
			db := &fakeDB{t: t, answers: append([]answer{tt.fail}, healthyCatalog(relkind)...)}
			r, err := Inspect(context.Background(), db, loadConfig(t, inspectConfig))
			if err != nil {
				t.Fatalf("Inspect: %v; want the failure reported as a finding", err)
			}
			found := false
			for _, f := range r.Findings {
				if strings.Contains(f.Message, errInjected.Error()) {
					found = true
					if f.Severity != tt.severity || f.Code != tt.code || !strings.Contains(f.Message, tt.says) {
						t.Errorf("finding %q is a %s with code %q; want a %s with code %q naming %q", f, f.Severity, f.Code, tt.severity, tt.code, tt.says)
					}
				}
				if tt.unwanted != "" && strings.Contains(f.Message, tt.unwanted) {
					t.Errorf("finding %q reports the failed query's empty answer as a fact", f)
				}
			}
			if !found {
				t.Errorf("no finding names the failure; findings:\n%s", findingLines(r))
			}
		})
	}
}

func findingLines(r *Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString("  " + f.Severity.String() + " " + string(f.Code) + " " + f.String() + "\n")
	}
	return b.String()
}

func TestUnfound(t *testing.T) {
	configured := []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "doc", Name: "file", Field: "watch[0].columns[0]"},
		{Storage: "media", Schema: "public", Table: "legacy", Name: "file", Protect: true, Field: "protect[0].columns[0]"},
	}
	r := &Report{Columns: configured[:1]}
	if got := r.Unfound(configured); !slices.Equal(got, []string{"protect[0].columns[0]"}) {
		t.Errorf("Unfound = %q, want the protect column", got)
	}
	r.Columns = configured
	if got := r.Unfound(configured); len(got) != 0 {
		t.Errorf("Unfound = %q, want none", got)
	}
}

// TestInspectSuggestsCaseVariants: a table or column written with YAML
// quotes only is folded to lower case; when a name differing only in case
// exists, the problem names it as the configuration must write it.
func TestInspectSuggestsCaseVariants(t *testing.T) {
	const legacyConfig = `postgres:
  url: postgres://cleaner@127.0.0.1:5432/app
storages:
  media:
    type: local
    root: /srv/app/media
watch:
  - table: %s
    columns: [%s]
    storage: media
`
	tableLookup := "c.relreplident::text, has_schema_privilege"
	notFound := func(match string) answer { return answer{match: match, rows: nil} }
	tests := []struct {
		name          string
		table, column string
		answers       []answer
		field, want   string
	}{
		{
			name: "table written with YAML quotes", table: `"LegacyDoc"`, column: "file",
			answers: []answer{notFound(tableLookup),
				{match: "lower(c.relname) = lower($2)", rows: [][]any{{"public", "LegacyDoc"}}}},
			field: "watch[0].table",
			want:  `table public.legacydoc does not exist; did you mean '"LegacyDoc"'? (YAML quotes are not SQL quotes: write table: '"LegacyDoc"' to keep the capitals)`,
		},
		{
			name: "qualified, schema and table in the wrong case", table: "Legacy.Doc", column: "file",
			answers: []answer{notFound(tableLookup),
				{match: "lower(c.relname) = lower($2)", rows: [][]any{{"Legacy", "Doc"}, {"Legacy", "doc"}}}},
			field: "watch[0].table",
			want:  `table legacy.doc does not exist; did you mean '"Legacy"."Doc"' or '"Legacy".doc'? (YAML quotes are not SQL quotes: write one of them as shown, single quotes and all, to keep the capitals)`,
		},
		{
			name: "SQL-quoted, in another case", table: `'"Legacydoc"'`, column: "file",
			answers: []answer{notFound(tableLookup),
				{match: "lower(c.relname) = lower($2)", rows: [][]any{{"public", "LegacyDoc"}}}},
			field: "watch[0].table",
			want:  `table public.Legacydoc does not exist; did you mean '"LegacyDoc"'?`,
		},
		{
			name: "only the schema differs in case", table: "Media.doc", column: "file",
			answers: []answer{notFound(tableLookup), notFound("lower(c.relname) = lower($2)"),
				{match: "FROM pg_namespace WHERE lower(nspname)", rows: [][]any{{"Media"}}}},
			field: "watch[0].table",
			want:  `table media.doc does not exist; schema media does not exist either, but schema '"Media"' does (YAML quotes are not SQL quotes: write table: '"Media".doc' to keep its capitals)`,
		},
		{
			name: "no variant: the usual advice", table: "nope", column: "file",
			answers: []answer{notFound(tableLookup), notFound("lower(c.relname) = lower($2)"),
				{match: "FROM pg_namespace WHERE lower(nspname)", rows: [][]any{{"public"}}}},
			field: "watch[0].table",
			want:  "table public.nope does not exist (names are case-folded unless double-quoted, as in SQL)",
		},
		{
			name: "a failed lookup leaves the hint out", table: "nope", column: "file",
			answers: []answer{notFound(tableLookup), {match: "lower(c.relname) = lower($2)", err: errInjected}},
			field:   "watch[0].table",
			want:    "table public.nope does not exist (names are case-folded unless double-quoted, as in SQL)",
		},
		{
			name: "column written with YAML quotes", table: "public.doc", column: `"ImageFile"`,
			answers: []answer{notFound("format_type(a.atttypid, a.atttypmod)"),
				{match: "lower(attname) = lower($2)", rows: [][]any{{"ImageFile"}}}},
			field: "watch[0].columns[0]",
			want:  `column "imagefile" not found in public.doc; did you mean '"ImageFile"'? (YAML quotes are not SQL quotes: write '"ImageFile"' in columns to keep the capitals)`,
		},
		{
			name: "column with no variant: the usual advice", table: "public.doc", column: "imge",
			answers: []answer{notFound("format_type(a.atttypid, a.atttypmod)"), notFound("lower(attname) = lower($2)")},
			field:   "watch[0].columns[0]",
			want:    `column "imge" not found in public.doc: if it was renamed, put its new name in the configuration; if it was dropped, remove it (then cdc-cleaner scan finds the files it referenced); a running cleaner holds the changes that follow until then`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, fmt.Sprintf(legacyConfig, tt.table, tt.column))
			db := &fakeDB{t: t, answers: append(tt.answers, healthyCatalog("r")...)}
			r, err := Inspect(context.Background(), db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range r.Problems() {
				if f.Field == tt.field && f.Message == tt.want {
					return
				}
			}
			t.Errorf("no problem %s: %s; findings:\n%s", tt.field, tt.want, findingLines(r))
		})
	}
}

// TestInspectFailover: what check says about a failover, by server
// version and standby setup.
func TestInspectFailover(t *testing.T) {
	v17 := answer{match: "current_setting('max_wal_senders')", rows: [][]any{{170004, "logical", "10", "10", "1GB", "cleaner", true, true}}}
	tests := []struct {
		name    string
		answers []answer
		want    string
	}{
		{"15 with a standby", []answer{
			{match: "WHERE slot_type = 'physical' ORDER BY 1", rows: [][]any{{"sb1", true, true}}},
			{match: "FROM pg_stat_replication r", rows: [][]any{{1}}},
		}, "PostgreSQL 15 has no failover slots"},
		{"17, not a failover slot", []answer{v17,
			{match: "SELECT failover FROM pg_replication_slots", rows: [][]any{{false}}},
		}, "is not a failover slot, so a promoted standby will not have it"},
		{"17, no synchronized_standby_slots: names only the streaming standby", []answer{v17,
			{match: "WHERE slot_type = 'physical' ORDER BY 1", rows: [][]any{{"gone", false, false}, {"sb1", true, true}}},
			{match: "FROM pg_stat_replication r", rows: [][]any{{1}}},
			{match: "SELECT failover FROM pg_replication_slots", rows: [][]any{{true}}},
			{match: "current_setting('synchronized_standby_slots', true)", rows: [][]any{{""}}},
		}, "Set synchronized_standby_slots = 'sb1' on this server"},
		{"17, a standby without hot_standby_feedback", []answer{v17,
			{match: "WHERE slot_type = 'physical' ORDER BY 1", rows: [][]any{{"sb1", true, false}}},
			{match: "FROM pg_stat_replication r", rows: [][]any{{1}}},
			{match: "SELECT failover FROM pg_replication_slots", rows: [][]any{{true}}},
			{match: "current_setting('synchronized_standby_slots', true)", rows: [][]any{{"sb1"}}},
		}, "do not send hot_standby_feedback"},
		{"17, ready", []answer{v17,
			{match: "WHERE slot_type = 'physical' ORDER BY 1", rows: [][]any{{"sb1", true, true}}},
			{match: "FROM pg_stat_replication r", rows: [][]any{{1}}},
			{match: "SELECT failover FROM pg_replication_slots", rows: [][]any{{true}}},
			{match: "current_setting('synchronized_standby_slots', true)", rows: [][]any{{"sb1"}}},
		}, "is a failover slot; the cleaner receives only what the standbys on sb1 have received"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{t: t, answers: append(tt.answers, healthyCatalog("r")...)}
			r, err := Inspect(context.Background(), db, loadConfig(t, inspectConfig))
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, f := range r.Findings {
				all = append(all, f.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Errorf("check does not say %q:\n%s", tt.want, strings.Join(all, "\n"))
			}
		})
	}
}
