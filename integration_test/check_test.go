package integration_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

// TestCheckReportsEachMisconfiguration breaks one thing at a time and reads
// check's report: exit 1 and the line that names it, or exit 0 with a
// warning for what only deserves one.
func TestCheckReportsEachMisconfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  envOptions
		setup string // SQL run after setup
		code  int
		want  []string
		// since is the server version the broken thing needs (row
		// filters and column lists in publications: 15).
		since int
	}{
		{name: "healthy", opts: envOptions{schema: photoSchema, watch: photoWatch}, code: 0,
			want: []string{"wal_level is logical", "covers the watched tables", "exists", "0 problems"}},
		{name: "slot dropped", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()`,
			code:  1, want: []string{"FAIL", "postgres.slot", "does not exist here, although cdc-cleaner setup recorded creating it"}},
		{name: "publication dropped", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('DROP PUBLICATION %I', p); END LOOP; END $$`,
			code:  1, want: []string{"postgres.publication", "does not exist: run cdc-cleaner setup"}},
		{name: "table left the publication", opts: envOptions{schema: photoSchema + `CREATE TABLE other (f text);`, watch: photoWatch + `
  - table: other
    columns: [f]
    storage: media`},
			setup: `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('ALTER PUBLICATION %I DROP TABLE other', p); END LOOP; END $$`,
			code:  1, want: []string{"does not cover", "other"}},
		{name: "replica identity reset", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `ALTER TABLE gallery_photo REPLICA IDENTITY DEFAULT`,
			code:  1, want: []string{"watch[0].table", "REPLICA IDENTITY FULL"}},
		{name: "missing index is a warning", opts: envOptions{schema: `CREATE TABLE doc (id int PRIMARY KEY, file text);`, watch: `watch:
  - table: doc
    columns: [file]
    storage: media`},
			code: 0, want: []string{"warning", `no index starts with "public"."doc"."file"`, "CREATE INDEX ON"}},
		{name: "failed_deletions dropped", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `DROP TABLE cdc_cleaner.failed_deletions`,
			code:  1, want: []string{"cdc_cleaner.failed_deletions does not exist"}},
		{name: "column dropped after setup", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `ALTER TABLE gallery_photo DROP COLUMN thumbnail`,
			code:  1, want: []string{`watch[0].columns[1]: column "thumbnail" not found`}},
		{name: "row filter on a watched table", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('ALTER PUBLICATION %I SET TABLE gallery_photo WHERE (id > 10)', p); END LOOP; END $$`,
			code:  1, want: []string{"postgres.publication", "has a row filter on", "(id > 10)", "files leak"}, since: 150000},
		{name: "column list without a watched column", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('ALTER PUBLICATION %I SET TABLE gallery_photo (id, image)', p); END LOOP; END $$`,
			code:  1, want: []string{"publishes only some columns of", `not the watched "thumbnail"`}, since: 150000},
		{name: "partitioned table published through its partitions", opts: envOptions{schema: `CREATE TABLE upload (id int, at date, file text) PARTITION BY RANGE (at);
CREATE TABLE upload_1 PARTITION OF upload FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');`, watch: `watch:
  - table: upload
    columns: [file]
    storage: media`},
			setup: `DO $$ DECLARE p text; BEGIN FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('ALTER PUBLICATION %I SET (publish_via_partition_root = false)', p); END LOOP; END $$`,
			code:  1, want: []string{"does not publish_via_partition_root", "is partitioned"}},
		{name: "event trigger of an earlier version", opts: envOptions{schema: photoSchema, watch: photoWatch},
			setup: oldEventTrigger,
			code:  1, want: []string{"comes from an earlier cdc-cleaner setup", "permission denied for schema pg_toast", "run cdc-cleaner setup as a superuser"}},
		{name: "unlimited WAL retention is a warning", opts: envOptions{schema: photoSchema, watch: photoWatch}, code: 0,
			want: []string{"max_slot_wal_keep_size is unlimited"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if v := cluster.Version(); v < tt.since {
				t.Skipf("PostgreSQL %d cannot be broken this way (it needs %d)", v/10000, tt.since/10000)
			}
			e := newEnv(t, tt.opts)
			if tt.setup != "" {
				e.exec(tt.setup)
			}
			out, code := e.cli("check")
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s", out)
			}
		})
	}
}

// TestCheckFindingCodes: the problems setup goes on past (it creates the
// publication, slot and schema, sets the replica identity) and those it
// refuses to run with are told apart by their codes, not their text: each
// kind of problem carries its code.
func TestCheckFindingCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noSetup: true, schema: photoSchema + `
CREATE TABLE upload (id int, at date, file text) PARTITION BY RANGE (at);
CREATE TABLE upload_1 PARTITION OF upload FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');
ALTER TABLE upload REPLICA IDENTITY FULL;
CREATE TABLE counter (id int PRIMARY KEY, n int);
ALTER TABLE counter REPLICA IDENTITY FULL;`, watch: photoWatch + `
  - table: upload
    columns: [file]
    storage: media
  - table: counter
    columns: [n]
    storage: media`})
	cfg, err := config.Load(e.cfgPath, cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	inspect := func(e *env) *provision.Report {
		t.Helper()
		r, err := provision.Inspect(context.Background(), e.conn(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// want: a problem with this code, field and text.
	type want struct {
		code  provision.Code
		field string
		text  string
	}
	check := func(what string, r *provision.Report, wants []want) {
		t.Helper()
		for _, w := range wants {
			found := false
			for _, p := range r.Problems() {
				if p.Field == w.field && strings.Contains(p.Message, w.text) {
					found = true
					if p.Code != w.code {
						t.Errorf("%s: problem %q has code %q, want %q", what, p, p.Code, w.code)
					}
				}
			}
			if !found {
				t.Errorf("%s: no problem of %s saying %q; problems: %q", what, w.field, w.text, r.Problems())
			}
		}
	}

	check("before setup", inspect(e), []want{
		{provision.CodeReplicaIdentity, "watch[0].table", "lacks REPLICA IDENTITY FULL"},
		{provision.CodeReplicaIdentity, "watch[1].table", "partitions of"},
		{provision.CodeGeneral, "watch[2].columns[0]", `column "n" of "public"."counter" has type integer`},
		{provision.CodeCleanerSchema, "", "table cdc_cleaner.failed_deletions does not exist"},
		{provision.CodePublication, "postgres.publication", "does not exist"},
		{provision.CodeSlot, "postgres.slot", "does not exist"},
	})

	// Setup refuses to run with a column that cannot hold paths, and goes
	// on past everything else.
	out, code := e.cli("setup")
	if code != 2 || !strings.Contains(out, "has type integer") {
		t.Fatalf("setup with an integer column: exit %d, want 2 naming it:\n%s", code, out)
	}
	e.exec(`ALTER TABLE counter ALTER COLUMN n TYPE text`)
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	if p := inspect(e).Problems(); len(p) > 0 {
		t.Fatalf("problems after setup: %q", p)
	}

	// A role with no privileges at all.
	role := testRole(t, e)
	e.exec("CREATE ROLE " + pgx.Identifier{role}.Sanitize() + " LOGIN")
	check("as a role without privileges", inspect(asRole(t, e, role)), []want{
		{provision.CodeNoReplication, "postgres.url", "has neither REPLICATION nor SUPERUSER"},
		{provision.CodeMissingPrivilege, "watch[0].columns[0]", "may not read column"},
		{provision.CodeCleanerSchema, "", "may not use schema cdc_cleaner"},
		{provision.CodeCleanerSchema, "", "may not INSERT into cdc_cleaner.failed_deletions"},
		{provision.CodeCleanerSchema, "postgres.slot", "may not read cdc_cleaner.slots"},
	})
}

// oldEventTrigger installs, for every publication, the event trigger and
// function of cdc-cleaner setup before the trigger was rewritten: its query
// cast names to regclass over all of pg_class, and failed the
// application's DDL with "permission denied for schema pg_toast".
const oldEventTrigger = `DO $do$
DECLARE p text;
BEGIN
  FOR p IN SELECT pubname FROM pg_publication LOOP
    EXECUTE format($f$CREATE OR REPLACE FUNCTION cdc_cleaner.%I() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $b$
DECLARE r regclass;
BEGIN
  FOR r IN SELECT t.relid FROM pg_publication_tables pt
           CROSS JOIN LATERAL pg_partition_tree(format('%%I.%%I', pt.schemaname, pt.tablename)::regclass) t
           JOIN pg_class c ON c.oid = t.relid
           WHERE pt.pubname = %L AND c.relreplident <> 'f' AND c.relkind IN ('r', 'p')
  LOOP
    EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r);
  END LOOP;
END
$b$$f$, 'replica_identity_' || p, p);
    EXECUTE format('CREATE EVENT TRIGGER %I ON ddl_command_end WHEN TAG IN (''CREATE TABLE'', ''ALTER TABLE'') EXECUTE FUNCTION cdc_cleaner.%I()',
      left('cdc_cleaner_replica_identity_' || p, 63), 'replica_identity_' || p);
  END LOOP;
END
$do$`

// TestCheckSuggestsSQLQuotesForMixedCaseNames: the Django user
// wrote table: "LegacyDoc", which YAML reads as LegacyDoc and the
// configuration folds to legacydoc, as SQL does for unquoted names. check
// says which names exist in another case and how to write them; written as
// suggested, they are found.
func TestCheckSuggestsSQLQuotesForMixedCaseNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE "LegacyDoc" (id int PRIMARY KEY, "ImageFile" text);`,
		watch: `watch:
  - table: "LegacyDoc"
    columns: ["ImageFile"]
    storage: media`,
		noSetup: true,
	})
	out, code := e.cli("check")
	want := `watch[0].table: table public.legacydoc does not exist; did you mean '"LegacyDoc"'? (YAML quotes are not SQL quotes: write table: '"LegacyDoc"' to keep the capitals)`
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("check, table in YAML quotes: exit %d, want 1 with\n%s\n%s", code, want, out)
	}

	cfg := strings.Replace(readFile(t, e.cfgPath), `table: "LegacyDoc"`, `table: '"LegacyDoc"'`, 1)
	writeFile(t, e.cfgPath, cfg)
	out, code = e.cli("check")
	want = `watch[0].columns[0]: column "imagefile" not found in public.LegacyDoc; did you mean '"ImageFile"'? (YAML quotes are not SQL quotes: write '"ImageFile"' in columns to keep the capitals)`
	if code != 1 || !strings.Contains(out, want) || strings.Contains(out, "watch[0].table: table") {
		t.Errorf("check, column in YAML quotes: exit %d, want 1 with\n%s\nand the table found:\n%s", code, want, out)
	}

	writeFile(t, e.cfgPath, strings.Replace(cfg, `columns: ["ImageFile"]`, `columns: ['"ImageFile"']`, 1))
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup with the names written as suggested: exit %d:\n%s", code, out)
	}
	if out, code := e.cli("check"); code != 0 || !strings.Contains(out, "0 problems") {
		t.Errorf("check with the names written as suggested: exit %d, want 0:\n%s", code, out)
	}
}
