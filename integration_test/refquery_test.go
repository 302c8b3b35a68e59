package integration_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// queryNames are the names the reference queries use for their own
// aliases and result columns, now (t, u, j, c, path, v) and before issue 12
// (u, v, p), those of the queries scan reads non-canonical values with (m,
// s), and the cleaner's schema: a user column may be named like any of
// them.
var queryNames = []string{"t", "u", "j", "c", "v", "p", "path", "m", "s", "cdc_cleaner"}

// aliasTable creates table name with a column for every name of
// queryNames (and an id): those in typed have that type, the others are
// text and stay NULL.
func aliasTable(name string, typed map[string]string) string {
	cols := []string{"id int PRIMARY KEY"}
	for _, n := range queryNames {
		typ, ok := typed[n]
		if !ok {
			typ = "text"
		}
		cols = append(cols, fmt.Sprintf("%q %s", n, typ))
	}
	return fmt.Sprintf("CREATE TABLE %q (%s);\n", name, strings.Join(cols, ", "))
}

// TestReferenceQueriesWithColumnsNamedLikeAliases: watched and protect
// tables whose columns are named like every alias and result column the
// reference queries use, of every shape (text, varchar, text[],
// varchar[], jsonb and json with json_path, json that jsonb refuses), keep
// the files they reference and let the others go, through run and through
// scan --delete. Before issue 12 every reference check of such a storage
// failed (column reference "v" is ambiguous, "u" likewise) and held the
// slot; and in storage "bare", where nothing is ambiguous, a user column p
// silently captured the candidate of the text search of json values jsonb
// refuses, so a file such a value mentions was deleted.
func TestReferenceQueriesWithColumnsNamedLikeAliases(t *testing.T) {
	t.Parallel()
	schema := aliasTable("t", map[string]string{"v": "text", "u": "varchar(100)"}) +
		aliasTable("u", map[string]string{"p": "text[]", "path": "varchar(100)[]"}) +
		aliasTable("j", map[string]string{"v": "jsonb", "j": "jsonb"}) +
		aliasTable("c", map[string]string{"j": "json", "c": "json"}) +
		aliasTable("p", map[string]string{"t": "text", "c": "text[]"}) +
		aliasTable("v", map[string]string{"u": "jsonb"}) +
		aliasTable("path", map[string]string{"p": "json"}) +
		`CREATE TABLE bare (id int PRIMARY KEY, p text, data json);`
	e := newEnv(t, envOptions{
		schema: schema,
		storages: `storages:
  media:
    type: local
    root: {{root}}/media
  bare:
    type: local
    root: {{root}}/bare`,
		watch: `watch:
  - table: t
    columns: [v, u]
    storage: media
  - table: u
    columns: [p, path]
    storage: media
  - table: j
    columns: [v, j]
    json_path: "files[*].path"
    storage: media
  - table: c
    columns: [j, c]
    json_path: "items[*].path"
    storage: media
  - table: bare
    columns: [data]
    json_path: "items[*].path"
    storage: bare
protect:
  - table: p
    columns: [t, c]
    storage: media
  - table: v
    columns: [u]
    json_path: "path"
    storage: media
  - table: path
    columns: [p]
    json_path: "path"
    storage: media`,
	})
	// Serial plans only: TestReferenceQueriesInParallelPlans is about
	// parallel ones, and this test must fail only for what it is about.
	e.exec(fmt.Sprintf(`ALTER DATABASE %q SET max_parallel_workers_per_gather = 0`, e.db))
	kept := []string{
		"media/t/shared.jpg", "media/t/prot.jpg",
		"media/u/b.jpg", "media/u/prot.jpg",
		"media/j/b.pdf", "media/j/prot.pdf",
		"media/c/b.jpg", "media/c/bad.jpg", "media/c/prot.jpg", "media/c/prot-bad.jpg",
		"bare/kept.jpg",
		// Named only by values that are not canonical paths, which scan
		// reads with queries of their own.
		"media/t/spelled.jpg", "media/u/spelled.jpg", "media/j/spelled.pdf", "media/c/spelled.jpg", "media/c/spelled-bad.jpg",
	}
	gone := []string{
		"media/t/v1.jpg", "media/t/u1.jpg",
		"media/u/a.jpg", "media/u/c.jpg",
		"media/j/a.pdf", "media/j/c.pdf",
		"media/c/a.jpg", "media/c/c.jpg",
		"bare/gone.jpg",
	}
	e.put(slices.Concat(kept, gone)...)
	e.exec(`INSERT INTO t (id, v, u) VALUES (1, 't/v1.jpg', 't/u1.jpg'), (2, 't/shared.jpg', ''), (3, 't/shared.jpg', ''), (4, 't/prot.jpg', NULL);
		INSERT INTO p (id, t, c) VALUES (1, 't/prot.jpg', ARRAY['u/prot.jpg']);
		INSERT INTO u (id, p, path) VALUES (1, ARRAY['u/a.jpg', 'u/b.jpg'], ARRAY['u/c.jpg']), (2, ARRAY['u/b.jpg'], NULL), (3, NULL, ARRAY['u/prot.jpg']);
		INSERT INTO j (id, v, j) VALUES
			(1, '{"files":[{"path":"j/a.pdf"},{"path":"j/b.pdf"}]}', '{"files":[{"path":"j/c.pdf"}]}'),
			(2, NULL, '{"files":[{"path":"j/b.pdf"}]}'),
			(3, '{"files":[{"path":"j/prot.pdf"}]}', NULL);
		INSERT INTO v (id, u) VALUES (1, '{"path":"j/prot.pdf"}');
		INSERT INTO c (id, j, c) VALUES
			(1, '{"items":[{"path":"c/a.jpg"},{"path":"c/b.jpg"}]}', '{"items":[{"path":"c/c.jpg"}]}'),
			(2, NULL, '{"items":[{"path":"c/b.jpg"}]}'),
			(3, '{"note":"\u0000 c/bad.jpg"}', NULL),
			(4, NULL, '{"items":[{"path":"c/bad.jpg"}]}'),
			(5, '{"items":[{"path":"c/prot.jpg"},{"path":"c/prot-bad.jpg"}]}', NULL);
		INSERT INTO path (id, p) VALUES (1, '{"path":"c/prot.jpg"}'), (2, '{"x":"\u0000 c/prot-bad.jpg"}');
		INSERT INTO t (id, v, u) VALUES (5, './t/spelled.jpg', NULL);
		INSERT INTO u (id, p, path) VALUES (4, ARRAY['u//spelled.jpg'], NULL);
		INSERT INTO j (id, v, j) VALUES (4, NULL, '{"files":[{"path":"/media/j/spelled.pdf"}]}');
		INSERT INTO c (id, j, c) VALUES (6, NULL, '{"items":[{"path":"c/./spelled.jpg"}]}');
		INSERT INTO path (id, p) VALUES (3, '{"path":"c//spelled-bad.jpg","x":"\u0000"}');
		INSERT INTO bare (id, p, data) VALUES (1, NULL, '{"note":"\u0000 kept.jpg"}'), (2, NULL, '{"items":[{"path":"kept.jpg"},{"path":"gone.jpg"}]}');`)

	e.start()
	// bare first, on its own: its reference query is the one that fails
	// silently rather than with an error.
	e.exec(`DELETE FROM bare WHERE id = 2`)
	e.settle()
	e.expect([]string{"bare/kept.jpg"}, []string{"bare/gone.jpg"})

	e.exec(`UPDATE t SET v = 't/v1-new.jpg', u = NULL WHERE id = 1`)
	e.exec(`DELETE FROM t WHERE id IN (2, 4)`)
	e.exec(`DELETE FROM u WHERE id IN (1, 3)`)
	e.exec(`DELETE FROM j WHERE id IN (1, 3)`)
	e.exec(`DELETE FROM c WHERE id IN (1, 4, 5)`)
	e.settle()
	e.expect(kept, gone)
	if f := e.failed(); len(f) > 0 {
		t.Errorf("failed_deletions: %v", f)
	}

	// scan --delete runs the same queries over every file of each storage.
	orphans := []string{"media/t/orphan.jpg", "media/u/orphan.jpg", "media/j/orphan.pdf", "media/c/orphan.jpg", "bare/orphan.jpg"}
	e.put(orphans...)
	for _, s := range []string{"media", "bare"} {
		out, code := e.cli("scan", "--storage", s, "--delete", "--min-age", "0s")
		if code != 0 {
			t.Errorf("scan --storage %s --delete exited %d:\n%s", s, code, out)
		}
	}
	e.expect(kept, orphans)
}
