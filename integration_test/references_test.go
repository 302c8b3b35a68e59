package integration_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// TestLogicalMessages: an application asks for a transactional delete of a
// file no column tracks with pg_logical_emit_message(true, 'cdc_cleaner',
// ...). It happens only if the transaction commits; a malformed request is
// recorded as failed; non-transactional messages and other prefixes are
// ignored.
func TestLogicalMessages(t *testing.T) {
	t.Parallel()
	needMessages(t)
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, media: "    messages: true"})
	e.put("msg/committed.jpg", "msg/rolled_back.jpg", "msg/not_transactional.jpg", "msg/other_prefix.jpg", "msg/referenced.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'msg/referenced.jpg')`)
	e.start()
	emit := func(transactional bool, prefix, storage, path string) string {
		return `SELECT pg_logical_emit_message(` + map[bool]string{true: "true", false: "false"}[transactional] + `, '` + prefix +
			`', json_build_object('storage', '` + storage + `', 'path', '` + path + `')::text)`
	}
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "media", "msg/committed.jpg") + `; COMMIT`)
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "media", "msg/rolled_back.jpg") + `; ROLLBACK`)
	e.exec(emit(false, "cdc_cleaner", "media", "msg/not_transactional.jpg"))
	e.exec(`BEGIN; ` + emit(true, "other", "media", "msg/other_prefix.jpg") + `; COMMIT`)
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "media", "msg/referenced.jpg") + `; COMMIT`)
	e.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'cdc_cleaner', 'please delete msg/x.jpg'); COMMIT`)
	e.exec(`BEGIN; ` + emit(true, "cdc_cleaner", "nosuchstorage", "msg/y.jpg") + `; COMMIT`)
	e.settle()
	e.expect([]string{"msg/rolled_back.jpg", "msg/not_transactional.jpg", "msg/other_prefix.jpg", "msg/referenced.jpg"},
		[]string{"msg/committed.jpg"})
	failed := e.failed()
	if failed["please delete msg/x.jpg"] != "bad_message" || failed["msg/y.jpg"] != "bad_message" {
		t.Errorf("failed_deletions %v, want both malformed requests as bad_message", failed)
	}
	if len(failed) != 2 {
		t.Errorf("failed_deletions has %d rows, want 2: %v", len(failed), failed)
	}
}

// TestMessagesNeedOptIn: pg_logical_emit_message is executable by PUBLIC,
// so a role with no privilege on any table, in a read-only transaction,
// can emit a cdc_cleaner message. A storage without messages: true (the
// default) ignores it, counts it and says so; check warns that PUBLIC may
// emit messages for a storage that honours them, and not once EXECUTE is
// revoked.
func TestMessagesNeedOptIn(t *testing.T) {
	t.Parallel()
	needMessages(t)
	exports := t.TempDir()
	e := newEnv(t, envOptions{schema: photoSchema + `CREATE TABLE contract (id int PRIMARY KEY, pdf text);`, watch: photoWatch,
		httpListen: "127.0.0.1:0", storages: `storages:
  media:
    type: local
    root: {{root}}
  exports:
    type: local
    root: ` + exports + `
    messages: true`})
	// contracts/2026.pdf is referenced only by a table the cleaner does
	// not watch.
	e.put("contracts/2026.pdf")
	e.exec(`INSERT INTO contract VALUES (1, 'contracts/2026.pdf')`)
	if err := os.WriteFile(filepath.Join(exports, "42.zip"), []byte("zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	testRole(t, e) // skips when roles cannot be created
	nobody := "nobody_" + e.db
	e.exec(`CREATE ROLE ` + nobody + ` LOGIN`)
	t.Cleanup(func() { e.exec(`DROP ROLE IF EXISTS ` + nobody) })
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(nobody)

	p := e.start()
	addr := p.httpAddr(t)
	pgtest.Exec(t, u.String(), `BEGIN READ ONLY; SELECT pg_logical_emit_message(true, 'cdc_cleaner', '{"storage":"media","path":"contracts/2026.pdf"}'); COMMIT`)
	pgtest.Exec(t, u.String(), `BEGIN READ ONLY; SELECT pg_logical_emit_message(true, 'cdc_cleaner', '{"storage":"exports","path":"42.zip"}'); COMMIT`)
	e.settle()
	e.expect([]string{"contracts/2026.pdf"}, nil)
	if _, err := os.Stat(filepath.Join(exports, "42.zip")); !os.IsNotExist(err) {
		t.Errorf("exports/42.zip, requested for a storage with messages: true, still exists: %v", err)
	}
	_, body := get(t, "http://"+addr+"/metrics")
	if v := metricValue(body, `cdc_cleaner_messages_ignored_total{storage="media"}`); v != 1 {
		t.Errorf(`cdc_cleaner_messages_ignored_total{storage="media"} = %v, want 1`, v)
	}
	if v := metricValue(body, `cdc_cleaner_messages_ignored_total{storage="exports"}`); v != 0 {
		t.Errorf(`cdc_cleaner_messages_ignored_total{storage="exports"} = %v, want 0`, v)
	}
	if !strings.Contains(p.Logs(), `storage \"media\" does not honour cdc_cleaner messages`) {
		t.Errorf("no warning about the ignored message")
	}
	if len(e.failed()) != 0 {
		t.Errorf("failed_deletions = %v, want nothing recorded for an ignored message", e.failed())
	}

	out, _ := e.cli("check")
	if !strings.Contains(out, "executable by PUBLIC") || !strings.Contains(out, "REVOKE EXECUTE ON FUNCTION pg_logical_emit_message") {
		t.Errorf("check does not warn that any role may emit messages for exports:\n%s", out)
	}
	e.exec(emitMessageGrant("REVOKE", "FROM"))
	t.Cleanup(func() {
		e.exec(emitMessageGrant("GRANT", "TO"))
	})
	if out, _ := e.cli("check"); strings.Contains(out, "executable by PUBLIC,") {
		t.Errorf("check still warns after REVOKE:\n%s", out)
	}
}

// TestDeleteDelay: with delete_delay, a candidate waits until its commit
// time plus the delay and is checked again right before deletion: a path
// re-referenced during the delay is kept, one that is not is deleted after
// the delay; kill -9 during the delay loses nothing.
func TestDeleteDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, extra: "delete_delay: 4s"})
	e.put("dl/rereferenced.jpg", "dl/orphan.jpg", "dl/killed.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'dl/rereferenced.jpg'), (2, 'dl/orphan.jpg'), (3, 'dl/killed.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id IN (1, 2)`)
	time.Sleep(time.Second)
	// Well inside the delay: nothing is gone yet, and a re-upload points a
	// new row at the first file again.
	e.expect([]string{"dl/rereferenced.jpg", "dl/orphan.jpg"}, nil)
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (10, 'dl/rereferenced.jpg')`)
	e.settle()
	e.expect([]string{"dl/rereferenced.jpg"}, []string{"dl/orphan.jpg"})

	// kill -9 during the delay; the restarted cleaner deletes after it.
	e.exec(`DELETE FROM gallery_photo WHERE id = 3`)
	time.Sleep(time.Second)
	p.kill()
	e.expect([]string{"dl/killed.jpg"}, nil)
	e.start()
	e.settle()
	e.expect(nil, []string{"dl/killed.jpg"})
}

// TestJSONColumns: string leaves at json_path in a jsonb column are paths;
// a leaf removed is deleted, one another row still holds is kept, a large
// TOASTed document that did not change is not read as vanished, and a json
// (not jsonb) column with a value jsonb refuses does not stall the stream
// and still keeps the files its text mentions.
//
// Run on its own, this test also caught the slot failing to follow the
// server's WAL end while idle: the write position reported in status
// updates (XLogData start plus length) ran ahead of what the walsender had
// sent, so it stopped sending the keepalives the cleaner follows.
func TestJSONColumns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE document (id int PRIMARY KEY, title text, attachments jsonb);
			CREATE INDEX ON document USING gin (attachments jsonb_path_ops);
			CREATE TABLE gallery (id int PRIMARY KEY, data json);`,
		watch: `watch:
  - table: document
    columns: [attachments]
    json_path: "files[*].path"
    storage: media
  - table: gallery
    columns: [data]
    json_path: "items[*].sizes[*].path"
    storage: media`,
	})
	e.put("j/a.pdf", "j/b.pdf", "j/shared.pdf", "j/big.pdf", "g/1s.jpg", "g/1l.jpg", "g/2s.jpg", "g/kept-by-bad-row.jpg")
	e.exec(`INSERT INTO document VALUES
		(1, 't', '{"files":[{"path":"j/a.pdf"},{"path":"j/b.pdf"},{"path":"j/shared.pdf"}]}'),
		(2, 't', '{"files":[{"path":"j/shared.pdf"}]}'),
		(3, 't', jsonb_build_object('files', jsonb_build_array(jsonb_build_object('path', 'j/big.pdf')), 'padding', repeat('x', 20000)))`)
	e.exec(`ALTER TABLE document ALTER COLUMN attachments SET STORAGE EXTERNAL`)
	e.exec(`UPDATE document SET attachments = attachments || '{}'::jsonb WHERE id = 3`) // rewrite it out of line
	e.exec(`INSERT INTO gallery VALUES
		(1, '{"items":[{"sizes":[{"path":"g/1s.jpg"},{"path":"g/1l.jpg"}]},{"sizes":[{"path":"g/2s.jpg"}]}]}'),
		(2, '{"note":"\u0000 g/kept-by-bad-row.jpg"}')`)
	e.start()
	e.exec(`UPDATE document SET attachments = '{"files":[{"path":"j/b.pdf"}]}' WHERE id = 1`)
	e.exec(`UPDATE document SET title = 'changed' WHERE id = 3`)
	e.exec(`UPDATE gallery SET data = '{"items":[{"sizes":[{"path":"g/1s.jpg"}]}]}' WHERE id = 1`)
	e.settle()
	e.expect([]string{"j/b.pdf", "j/shared.pdf", "j/big.pdf", "g/1s.jpg"}, []string{"j/a.pdf", "g/1l.jpg", "g/2s.jpg"})

	// A path vanishing from the json column while only the row jsonb
	// refuses mentions it: kept (searched as text).
	e.exec(`INSERT INTO gallery VALUES (3, '{"items":[{"sizes":[{"path":"g/kept-by-bad-row.jpg"}]}]}')`)
	e.exec(`DELETE FROM gallery WHERE id = 3`)
	e.exec(`DELETE FROM document WHERE id = 3`)
	e.settle()
	e.expect([]string{"g/kept-by-bad-row.jpg"}, []string{"j/big.pdf"})
}

// TestMessageForStorageWithoutColumns: a storage no column maps to (used
// only by logical messages) has nothing that can reference its files: a
// message naming it deletes the file, and the slot moves on.
func TestMessageForStorageWithoutColumns(t *testing.T) {
	t.Parallel()
	needMessages(t)
	exports := t.TempDir()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	// Rewrite the configuration with a second local storage.
	cfg := readFile(t, e.cfgPath)
	cfg = strings.Replace(cfg, "storages:\n", "storages:\n  exports:\n    type: local\n    messages: true\n    root: "+exports+"\n", 1)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(exports, "42.zip"), []byte("zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.exec(`BEGIN; SELECT pg_logical_emit_message(true, 'cdc_cleaner', '{"storage":"exports","path":"42.zip"}'); COMMIT`)
	e.settle()
	if _, err := os.Stat(filepath.Join(exports, "42.zip")); !os.IsNotExist(err) {
		t.Fatalf("exports/42.zip still there: %v", err)
	}
}

// TestStandardConformingStringsOff: a database that still has
// standard_conforming_strings = off reads a backslash in an ordinary
// string literal as an escape. The SQL the cleaner generates must mean the
// same there: setup of a table named with a quote and a backslash works,
// and a json_path key holding a backslash is searched as that key, so a
// file another row still references under it is kept.
func TestStandardConformingStringsOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noSetup: true, watch: `watch:
  - table: 'public."we''ird\"'
    columns: [doc]
    json_path: 'a\b'
    storage: media`})
	e.exec(`ALTER DATABASE ` + pgx.Identifier{e.db}.Sanitize() + ` SET standard_conforming_strings = off`)
	e.exec(`SET standard_conforming_strings = on; CREATE TABLE "we'ird\" (id int PRIMARY KEY, doc jsonb)`)
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup with standard_conforming_strings off: exit %d:\n%s", code, out)
	}
	e.put("x.jpg", "y.jpg")
	// Dollar quotes: the test's own literals mean the same either way.
	e.exec(`INSERT INTO "we'ird\" VALUES (1, $j${"a\\b": "x.jpg"}$j$), (2, $j${"a\\b": "x.jpg"}$j$), (3, $j${"a\\b": "y.jpg"}$j$)`)
	if got := pgQueryString(t, e, `SELECT doc ->> $1 FROM "we'ird\" WHERE id = 1`, `a\b`); got != "x.jpg" {
		t.Fatalf("the test's rows do not hold key a\\b: %q", got)
	}
	e.start()
	e.exec(`DELETE FROM "we'ird\" WHERE id IN (1, 3)`)
	e.settle()
	e.expect([]string{"x.jpg"}, []string{"y.jpg"})
}

// emitMessageGrant is SQL that grants or revokes (verb) EXECUTE on every
// form of pg_logical_emit_message to or from (prep) PUBLIC: 13 to 16 have
// (boolean, text, text) and (boolean, text, bytea), 17 adds a flush
// argument to both.
func emitMessageGrant(verb, prep string) string {
	return fmt.Sprintf(`DO $$ DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname = 'pg_logical_emit_message' AND pronamespace = 'pg_catalog'::regnamespace LOOP
    EXECUTE format('%s EXECUTE ON FUNCTION %%s %s PUBLIC', f);
  END LOOP;
END $$`, verb, prep)
}

// needMessages skips a test of what logical decoding messages do on a
// server older than 14, which sends none to a logical slot;
// TestMessagesNeedPostgres14 asserts what the cleaner says there.
func needMessages(t *testing.T) {
	t.Helper()
	if v := cluster.Version(); v < 140000 {
		t.Skipf("PostgreSQL %d sends no logical decoding messages to a logical slot (14 and later do); TestMessagesNeedPostgres14 covers it", v/10000)
	}
}
