package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
)

// parallelRows is how many rows each table of TestReferenceQueriesInParallelPlans
// holds: tens of thousands, as a production table would.
const parallelRows = 30000

// TestReferenceQueriesInParallelPlans: with tables large enough, and a
// database whose settings make parallel plans cheap, the reference queries
// of every column shape (text, text[], jsonb, json watched and protected)
// run through scan --delete and run. The plans are checked with EXPLAIN:
// text, text[] and jsonb are parallel; json, which calls
// cdc_cleaner.try_jsonb, is parallel only with a PARALLEL SAFE stand-in for
// the function and serial with the real one. Before issue 12 try_jsonb was
// PARALLEL SAFE with an EXCEPTION block: every reference check of the json
// storage failed with "cannot start subtransactions during a parallel
// operation", scan exited 1 and run held the slot.
func TestReferenceQueriesInParallelPlans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE ptext (id int PRIMARY KEY, image varchar(100));
			CREATE TABLE parray (id int PRIMARY KEY, pictures text[]);
			CREATE TABLE pjsonb (id int PRIMARY KEY, doc jsonb);
			CREATE TABLE pjson (id int PRIMARY KEY, doc json);
			CREATE TABLE pjson_protect (id int PRIMARY KEY, doc json);
			-- what try_jsonb would be without its EXCEPTION block, for EXPLAIN only
			CREATE FUNCTION safe_try_jsonb(v json) RETURNS jsonb
				LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$ BEGIN RETURN v::jsonb; END $$;`,
		storages: `storages:
  text:
    type: local
    root: {{root}}/text
  array:
    type: local
    root: {{root}}/array
  jsonb:
    type: local
    root: {{root}}/jsonb
  json:
    type: local
    root: {{root}}/json`,
		watch: `watch:
  - table: ptext
    columns: [image]
    storage: text
  - table: parray
    columns: [pictures]
    storage: array
  - table: pjsonb
    columns: [doc]
    json_path: "files[*].path"
    storage: jsonb
  - table: pjson
    columns: [doc]
    json_path: "files[*].path"
    storage: json
protect:
  - table: pjson_protect
    columns: [doc]
    json_path: "path"
    storage: json`,
	})
	e.exec(fmt.Sprintf(`ALTER DATABASE %q SET parallel_setup_cost = 0;
		ALTER DATABASE %[1]q SET parallel_tuple_cost = 0;
		ALTER DATABASE %[1]q SET min_parallel_table_scan_size = 0;
		ALTER DATABASE %[1]q SET max_parallel_workers_per_gather = 2`, e.db))
	e.exec(fmt.Sprintf(`INSERT INTO ptext SELECT i, 'fill/' || i || '.jpg' FROM generate_series(1, %[1]d) i;
		INSERT INTO parray SELECT i, ARRAY['fill/' || i || '.jpg'] FROM generate_series(1, %[1]d) i;
		INSERT INTO pjsonb SELECT i, jsonb_build_object('files', jsonb_build_array(jsonb_build_object('path', 'fill/' || i || '.jpg'))) FROM generate_series(1, %[1]d) i;
		INSERT INTO pjson SELECT i, json_build_object('files', json_build_array(json_build_object('path', 'fill/' || i || '.jpg'))) FROM generate_series(1, %[1]d) i;
		INSERT INTO pjson_protect SELECT i, json_build_object('path', 'fill/p' || i || '.jpg') FROM generate_series(1, %[1]d) i;
		INSERT INTO ptext VALUES (100001, 'gone.jpg'), (100002, 'shared.jpg'), (100003, 'shared.jpg');
		INSERT INTO parray VALUES (100001, ARRAY['gone.jpg', 'shared.jpg']), (100002, ARRAY['shared.jpg']);
		INSERT INTO pjsonb VALUES (100001, '{"files":[{"path":"gone.jpg"},{"path":"shared.jpg"}]}'), (100002, '{"files":[{"path":"shared.jpg"}]}');
		INSERT INTO pjson VALUES
			(100001, '{"files":[{"path":"gone.jpg"},{"path":"shared.jpg"},{"path":"prot.jpg"},{"path":"bad.jpg"}]}'),
			(100002, '{"files":[{"path":"shared.jpg"}]}'),
			(100003, '{"note":"\u0000 bad.jpg"}');
		INSERT INTO pjson_protect VALUES (100001, '{"path":"prot.jpg"}');
		ANALYZE`, parallelRows))

	storages := []string{"text", "array", "jsonb", "json"}
	kept := map[string][]string{
		"text":  {"shared.jpg"},
		"array": {"shared.jpg"},
		"jsonb": {"shared.jpg"},
		"json":  {"shared.jpg", "prot.jpg", "bad.jpg"},
	}
	in := func(s string, paths ...string) []string {
		out := make([]string, len(paths))
		for i, p := range paths {
			out[i] = s + "/" + p
		}
		return out
	}
	for _, s := range storages {
		e.put(in(s, append([]string{"gone.jpg", "orphan.jpg"}, kept[s]...)...)...)
	}

	explainReferenceQueries(t, e.url)

	// scan --delete: every file of a storage is checked, in batches. The
	// rows that fill the tables name no files, which the guards take for a
	// wrong mapping: --force, since this test is about the queries.
	for _, s := range storages {
		out, code := e.cli("scan", "--storage", s, "--delete", "--min-age", "0s", "--force")
		if code != 0 {
			t.Errorf("scan --storage %s --delete exited %d:\n%s", s, code, out)
		}
		e.expect(in(s, append([]string{"gone.jpg"}, kept[s]...)...), in(s, "orphan.jpg"))
	}

	// run: each deletion is checked first.
	e.start()
	e.exec(`DELETE FROM ptext WHERE id IN (100001, 100002);
		DELETE FROM parray WHERE id = 100001;
		DELETE FROM pjsonb WHERE id = 100001;
		DELETE FROM pjson WHERE id = 100001`)
	e.settle()
	for _, s := range storages {
		e.expect(in(s, kept[s]...), in(s, "gone.jpg"))
	}
	if f := e.failed(); len(f) > 0 {
		t.Errorf("failed_deletions: %v", f)
	}
}

// explainReferenceQueries checks that the database of url plans the
// reference queries of TestReferenceQueriesInParallelPlans in parallel, so
// that the test keeps testing parallel plans: each query as run sends it,
// and for json the same query with try_jsonb replaced by a PARALLEL SAFE
// stand-in. With the real try_jsonb (PARALLEL UNSAFE) the json query must
// be serial.
func explainReferenceQueries(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	refs, err := refcheck.New(pool, []cdccleaner.Column{
		{Storage: "text", Schema: "public", Table: "ptext", Name: "image", Type: typeText},
		{Storage: "array", Schema: "public", Table: "parray", Name: "pictures", Type: typeArray},
		{Storage: "jsonb", Schema: "public", Table: "pjsonb", Name: "doc", Type: typeJSONB, JSONPath: jsonPath("files[*].path")},
		{Storage: "json", Schema: "public", Table: "pjson", Name: "doc", Type: typeJSON, JSONPath: jsonPath("files[*].path")},
		{Storage: "json", Schema: "public", Table: "pjson_protect", Name: "doc", Type: typeJSON, JSONPath: jsonPath("path")},
	})
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"gone.jpg", "shared.jpg"}
	explain := func(sql string, args ...any) string {
		t.Helper()
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, append([]any{paths}, args...)...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", sql, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("EXPLAIN %s: %v", sql, err)
		}
		return strings.Join(plan, "\n")
	}
	docs := []string{`{"files":[{"path":"gone.jpg"}]}`, `{"files":[{"path":"shared.jpg"}]}`}
	jsonSQL := refs.SQL("json")
	for name, plan := range map[string]string{
		"text":                         explain(refs.SQL("text")),
		"array":                        explain(refs.SQL("array")),
		"jsonb":                        explain(refs.SQL("jsonb"), docs),
		"json, PARALLEL SAFE stand-in": explain(strings.ReplaceAll(jsonSQL, "cdc_cleaner.try_jsonb(", "public.safe_try_jsonb(")),
	} {
		if !strings.Contains(plan, "Gather") {
			t.Errorf("the reference query of %s is not planned in parallel, so this test no longer tests parallel plans:\n%s", name, plan)
		}
	}
	if plan := explain(jsonSQL); strings.Contains(plan, "Gather") {
		t.Errorf("the reference query of json, which calls cdc_cleaner.try_jsonb, is planned in parallel:\n%s", plan)
	}
}

// oldTryJSONB is cdc_cleaner.try_jsonb as setup installed it before issue
// 12: PARALLEL SAFE, with an EXCEPTION block.
const oldTryJSONB = `CREATE OR REPLACE FUNCTION cdc_cleaner.try_jsonb(v json) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN v::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$`

// TestSetupUpgradesParallelSafeTryJSONB: a database set up by an earlier
// version has try_jsonb PARALLEL SAFE. check says so and how to fix it: a
// problem (exit 1) when a json column calls the function, a warning when
// none does; setup again makes it PARALLEL UNSAFE, and check is clean.
func TestSetupUpgradesParallelSafeTryJSONB(t *testing.T) {
	t.Parallel()
	const finding = "cdc_cleaner.try_jsonb(json) is PARALLEL SAFE"
	tests := []struct {
		name string
		opts envOptions
		code int // of check before the upgrade
	}{
		{name: "json column", code: 1, opts: envOptions{
			schema: `CREATE TABLE gallery (id int PRIMARY KEY, data json);`,
			watch: `watch:
  - table: gallery
    columns: [data]
    json_path: "items[*].path"
    storage: media`}},
		{name: "no json column", code: 0, opts: envOptions{schema: photoSchema, watch: photoWatch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.opts)
			e.exec(oldTryJSONB)
			out, code := e.cli("check")
			if code != tt.code {
				t.Errorf("check before the upgrade: exit %d, want %d:\n%s", code, tt.code, out)
			}
			wantContains(t, "check before the upgrade", out, finding, "run cdc-cleaner setup", "migrations/0001_cdc_cleaner_schema.sql", "PARALLEL UNSAFE")

			if out, code := e.cli("setup"); code != 0 {
				t.Fatalf("setup exited %d:\n%s", code, out)
			}
			var parallel string
			if err := e.conn().QueryRow(context.Background(), `SELECT proparallel::text FROM pg_proc WHERE oid = 'cdc_cleaner.try_jsonb(json)'::regprocedure`).Scan(&parallel); err != nil {
				t.Fatal(err)
			}
			if parallel != "u" {
				t.Errorf("after setup try_jsonb has proparallel %q, want u (PARALLEL UNSAFE)", parallel)
			}
			out, code = e.cli("check")
			if code != 0 || strings.Contains(out, "try_jsonb") {
				t.Errorf("check after setup: exit %d, want 0 and nothing about try_jsonb:\n%s", code, out)
			}
		})
	}
}
