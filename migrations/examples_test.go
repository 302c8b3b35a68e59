package migrations_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/migrations"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

var update = flag.Bool("update", false, "rewrite the SQL of the example files from what setup --print renders")

// exampleConfig is the configuration the example files are rendered for: a
// Django model Photo with two FileFields.
const exampleConfig = `postgres:
  url: postgres://cdc_cleaner_run@127.0.0.1:5432/app
storages:
  media:
    type: local
    root: /srv/app/media
watch:
  - table: public.gallery_photo
    columns: [image, thumbnail]
    storage: media
`

// exampleRole is the role name in 0002_cleaner_role.example.sql.
const exampleRole = "cdc_cleaner_run"

func loadExample(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cdc-cleaner.yaml")
	if err := os.WriteFile(path, []byte(exampleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestExamplesAreRendered keeps the example files honest: below its header
// (the comment block up to the first blank line), each holds exactly what
// `cdc-cleaner setup --print --role cdc_cleaner_run` prints for
// exampleConfig. After changing SetupSQL or RoleSQL, regenerate them with
// go test ./migrations -run Examples -update.
func TestExamplesAreRendered(t *testing.T) {
	cfg := loadExample(t)
	all := provision.SetupSQL(cfg, 0, provision.SetupOptions{Role: exampleRole})
	base := provision.SetupSQL(cfg, 0, provision.SetupOptions{})
	role := provision.RoleSQL(cfg, exampleRole)
	// setup --print --role is 0001, then 0003 without its slot, then 0002,
	// then the slot: the files split it where a migration tool would.
	if len(all) != len(base)+len(role) || all[0].SQL != strings.TrimSpace(migrations.Schema) {
		t.Fatalf("SetupSQL with a role is not the schema, the setup statements and RoleSQL before the slot")
	}
	files := map[string]string{
		"0002_cleaner_role.example.sql": provision.FormatSQL(role),
		"0003_publication.example.sql":  provision.FormatSQL(base[1:]),
	}
	for name, want := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		header, body, ok := strings.Cut(string(raw), "\n\n")
		if !ok || !strings.HasPrefix(header, "-- ") {
			t.Fatalf("%s: want a comment header, a blank line, then the SQL", name)
		}
		if *update {
			if err := os.WriteFile(name, []byte(header+"\n\n"+want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if body != want {
			t.Errorf("%s is not what setup --print renders for its configuration; regenerate it with go test ./migrations -run Examples -update\n--- file:\n%s\n--- rendered:\n%s", name, body, want)
		}
	}
}

// TestRoleSQLGrants: the role gets SELECT on exactly the configured
// columns (column-level), merged per table across watch and protect, USAGE
// on their schemas, and what run and status need of cdc_cleaner's objects
// (DELETE only on the journal, which run prunes); names are quoted.
func TestRoleSQLGrants(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdc-cleaner.yaml")
	err := os.WriteFile(path, []byte(exampleConfig+`  - table: '"Media Schema"."Album"'
    columns: [photos, '"Cover"']
    storage: media
protect:
  - table: public.gallery_photo
    columns: [legacy]
    storage: media
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	sql := provision.FormatSQL(provision.RoleSQL(cfg, `Cleaner "Run"`))
	for _, want := range []string{
		`CREATE ROLE "Cleaner ""Run""" WITH LOGIN;`,
		`ALTER ROLE "Cleaner ""Run""" WITH REPLICATION;`,
		`WHERE rolname = 'Cleaner "Run"'`,
		`GRANT USAGE ON SCHEMA "public", "Media Schema", cdc_cleaner TO "Cleaner ""Run""";`,
		`GRANT SELECT ("image", "thumbnail", "legacy") ON TABLE "public"."gallery_photo" TO "Cleaner ""Run""";`,
		`GRANT SELECT ("photos", "Cover") ON TABLE "Media Schema"."Album" TO "Cleaner ""Run""";`,
		`GRANT SELECT, INSERT ON TABLE cdc_cleaner.failed_deletions TO "Cleaner ""Run""";`,
		`GRANT USAGE ON SEQUENCE cdc_cleaner.failed_deletions_id_seq TO "Cleaner ""Run""";`,
		`GRANT SELECT, INSERT, DELETE ON TABLE cdc_cleaner.journal TO "Cleaner ""Run""";`,
		`GRANT EXECUTE ON FUNCTION cdc_cleaner.try_jsonb(json) TO "Cleaner ""Run""";`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("role SQL lacks %s\n%s", want, sql)
		}
	}
	// The SQL without comments, and without the one DELETE the role
	// needs: run prunes the journal.
	var code []string
	for _, line := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") && !strings.HasPrefix(line, "GRANT SELECT, INSERT, DELETE ON TABLE cdc_cleaner.journal TO ") {
			code = append(code, line)
		}
	}
	for _, bad := range []string{"SUPERUSER", "CREATEDB", "CREATEROLE", "GRANT ALL", "PASSWORD", "UPDATE ON", "DELETE ON"} {
		if strings.Contains(strings.Join(code, "\n"), bad) {
			t.Errorf("role SQL contains %s\n%s", bad, sql)
		}
	}
	if n := strings.Count(sql, "GRANT SELECT ("); n != 2 {
		t.Errorf("%d column grants, want one per table\n%s", n, sql)
	}
}

// TestFormatSQLKeepsNamesInComments: a quoted name may hold a line break;
// in a comment it must not start a line of SQL.
func TestFormatSQLKeepsNamesInComments(t *testing.T) {
	out := provision.FormatSQL([]provision.Statement{{Comment: "grant to \"a\nDROP TABLE t; --\"\r\nx", SQL: "SELECT 1"}})
	for _, line := range strings.Split(out, "\n") {
		if line != "" && line != "SELECT 1;" && !strings.HasPrefix(line, "-- ") {
			t.Errorf("line %q is outside the comment:\n%s", line, out)
		}
	}
}
