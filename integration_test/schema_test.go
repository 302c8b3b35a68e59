package integration_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyz returns the status code and body of /readyz.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	return get(t, "http://"+addr+"/readyz")
}

// metric returns one series of /metrics, -1 when it is not there.
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	_, body := get(t, "http://"+addr+"/metrics")
	return metricValue(body, series)
}

// lsnBefore reports whether LSN a is before b, as the server compares them.
func lsnBefore(t *testing.T, e *env, a, b string) bool {
	t.Helper()
	return pgQueryString(t, e, `SELECT ($1::pg_lsn < $2::pg_lsn)::text`, a, b) == "true"
}

// expectHeld checks that the cleaner p is held: cdc_cleaner_held is 1,
// /readyz fails, and the slot, after a status update, is confirmed before
// LSN before; then it stops p, which must exit 0.
func expectHeld(t *testing.T, e *env, p *proc, addr, before string) {
	t.Helper()
	eventually(t, 10*time.Second, "/readyz fails while held", func() bool {
		code, _ := readyz(t, addr)
		return code == 503
	})
	if v := metric(t, addr, "cdc_cleaner_held"); v != 1 {
		t.Errorf("cdc_cleaner_held = %v, want 1", v)
	}
	time.Sleep(time.Second) // a status update
	if got := pgtest.SlotConfirmedFlush(t, e.url, e.slot); !lsnBefore(t, e, got, before) {
		t.Errorf("slot confirmed %s, past the held change (which ends before %s)", got, before)
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM while held, want 0", code)
	}
}

// replaceInConfig edits the configuration file.
func replaceInConfig(t *testing.T, e *env, old, new string) {
	t.Helper()
	cfg := readFile(t, e.cfgPath)
	if !strings.Contains(cfg, old) {
		t.Fatalf("%q not in the configuration:\n%s", old, cfg)
	}
	writeFile(t, e.cfgPath, strings.Replace(cfg, old, new, 1))
}

// TestWatchedColumnRenamed: a watched column renamed while the cleaner runs
// no longer fits the configuration, which names it. The cleaner holds the
// slot at the first change after the rename; changes from before it, still
// waiting (delete_delay), settle, and their reference check searches the
// column under its new name (found by its table and attribute number), so
// a file another row still holds there is kept. It says when everything
// before the held change is confirmed; restarted then with the new name,
// it goes on and loses nothing. A column of the old name added after the
// held change does not make the check forget the renamed one.
func TestWatchedColumnRenamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0", extra: "delete_delay: 2s"})
	e.put("shared.jpg", "a_t.jpg", "b.jpg", "b_t.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'shared.jpg', 'a_t.jpg'), (2, 'b.jpg', 'b_t.jpg'), (3, 'shared.jpg', '')`)
	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.exec(`ALTER TABLE gallery_photo RENAME COLUMN image TO picture`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	after := pgQueryString(t, e, `SELECT pg_current_wal_insert_lsn()::text`)
	e.exec(`ALTER TABLE gallery_photo ADD COLUMN image varchar(100) NOT NULL DEFAULT ''`)
	p.waitLog("the configuration no longer fits the table", 30*time.Second)
	p.waitLog(`It was renamed to \"picture\"`, 30*time.Second)
	p.waitLog("everything before the held change is confirmed", 30*time.Second)
	e.expect([]string{"shared.jpg", "b.jpg", "b_t.jpg"}, []string{"a_t.jpg"})
	expectHeld(t, e, p, addr, after)
	// The application's new column of the old name is not the one the
	// configuration meant: watch the renamed one.
	replaceInConfig(t, e, "columns: [image, thumbnail]", "columns: [picture, thumbnail]")
	e.start()
	e.settle()
	e.expect([]string{"shared.jpg"}, []string{"b.jpg", "b_t.jpg"})
}

// TestWatchedColumnRebuilt: a column rebuilt in steps (add a new one,
// copy, drop the old, rename the new to the old name), as migrations of
// large tables do, with a change from before still waiting. While the
// configured column does not exist, its reference check fails and the
// change waits (it is never checked against fewer columns); once the new
// column has the name, the check finds the file there and keeps it. The
// periodic check says the name now names another column: restart, and
// scan for the old one's files.
func TestWatchedColumnRebuilt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: `watch:
  - table: public.gallery_photo
    columns: [image]
    storage: media`, extra: "delete_delay: 2s"})
	e.put("shared.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'shared.jpg'), (2, 'shared.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.exec(`ALTER TABLE gallery_photo ADD COLUMN image_new text NOT NULL DEFAULT ''`)
	e.exec(`UPDATE gallery_photo SET image_new = image`)
	e.exec(`ALTER TABLE gallery_photo DROP COLUMN image`)
	p.waitLog("reference check failed", 30*time.Second)
	e.exec(`ALTER TABLE gallery_photo RENAME COLUMN image_new TO image`)
	e.settle()
	e.expect([]string{"shared.jpg"}, nil)
	p.waitLog("is not the column it was when the cleaner started", 30*time.Second)
}

// TestWatchedColumnDropped: a watched column dropped while the cleaner
// runs, with a change from before the drop still waiting (delete_delay).
// The configuration no longer fits: the first change after the drop holds
// the slot (nothing is confirmed past it, its files stay), the error names
// table and column and says the column was dropped, cdc_cleaner_held is 1
// and /readyz fails; the change from before waits too, since its reference
// check cannot search the column the configuration names (it never
// searches less). Once the configuration drops the column too, a restart
// goes on from there and loses nothing it still watches.
func TestWatchedColumnDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0", extra: "delete_delay: 2s"})
	e.put("a.jpg", "a_t.jpg", "b_t.jpg", "c_t.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'a.jpg', 'a_t.jpg'), (2, '', 'b_t.jpg'), (3, '', 'c_t.jpg')`)
	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.exec(`ALTER TABLE gallery_photo DROP COLUMN image`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	before := pgQueryString(t, e, `SELECT pg_current_wal_insert_lsn()::text`)
	p.waitLog("the configuration no longer fits the table", 30*time.Second)
	if !strings.Contains(p.Logs(), `watched column \"image\" of public.gallery_photo`) || !strings.Contains(p.Logs(), `It was dropped: remove \"image\"`) {
		t.Errorf("the error does not name the table and column and say it was dropped")
	}
	time.Sleep(2 * time.Second) // past the delay
	e.expect([]string{"a.jpg", "a_t.jpg", "b_t.jpg"}, nil)
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, `column "image" not found`) {
		t.Errorf("check: exit %d, want 1 saying the column is not found:\n%s", code, out)
	}
	expectHeld(t, e, p, addr, before)

	replaceInConfig(t, e, "columns: [image, thumbnail]", "columns: [thumbnail]")
	e.start()
	e.settle()
	e.expect([]string{"c_t.jpg"}, []string{"a_t.jpg", "b_t.jpg"})
}

// TestRenamedThenAddedAgain: a watched column renamed, a row deleted, and a
// new column of the old name added: the delete holds (its Relation message
// lacks the column), and the file the renamed column still references in
// another row stays.
func TestRenamedThenAddedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, extra: "delete_delay: 1s"})
	e.put("shared.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'shared.jpg'), (2, 'shared.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`ALTER TABLE gallery_photo RENAME COLUMN image TO picture`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.exec(`ALTER TABLE gallery_photo ADD COLUMN image varchar(100) NOT NULL DEFAULT ''`)
	p.waitLog("the configuration no longer fits the table", 30*time.Second)
	time.Sleep(2 * time.Second)
	e.expect([]string{"shared.jpg"}, nil)
}

// TestWatchedColumnRetyped: a watched column changes type while the cleaner
// runs (text[] to text, text to text[]): changes before and after are
// decided by the type they were written with, and the reference check
// follows the new type; nothing is confirmed without its file deleted.
func TestWatchedColumnRetyped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: `CREATE TABLE album (id int PRIMARY KEY, photos text[], cover text);`, watch: `watch:
  - table: album
    columns: [photos]
    storage: media
protect:
  - table: album
    columns: [cover]
    storage: media`, httpListen: "127.0.0.1:0"})
	e.put("1a.jpg", "1b.jpg", "2.jpg", "3.jpg", "4.jpg", "kept.jpg")
	e.exec(`INSERT INTO album VALUES (1, '{1a.jpg,1b.jpg}', ''), (2, '{2.jpg}', ''), (3, '{3.jpg}', ''), (4, '{4.jpg}', ''), (5, '{kept.jpg}', ''), (6, '{}', 'kept.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM album WHERE id = 1`)
	e.exec(`ALTER TABLE album ALTER COLUMN photos TYPE text USING photos[1]`)
	e.exec(`DELETE FROM album WHERE id IN (2, 5)`)
	e.settle()
	e.expect([]string{"3.jpg", "4.jpg", "kept.jpg"}, []string{"1a.jpg", "1b.jpg", "2.jpg"})

	e.exec(`ALTER TABLE album ALTER COLUMN photos TYPE text[] USING ARRAY[photos]`)
	e.exec(`DELETE FROM album WHERE id = 3`)
	e.exec(`UPDATE album SET photos = '{}' WHERE id = 4`)
	e.settle()
	e.expect(nil, []string{"3.jpg", "4.jpg"})
	if strings.Contains(p.Logs(), "reference check failed") {
		t.Errorf("a reference check failed on the retyped column")
	}
}

// TestReplicaIdentityLost: REPLICA IDENTITY DEFAULT set by someone else
// while the cleaner runs, and a partition created later without REPLICA
// IDENTITY FULL: their UPDATE and DELETE do not carry old file paths. The
// cleaner names no candidate it cannot know, records each such transaction
// in failed_deletions (old_values_missing, with its source column and what
// to do), counts it, and reports the problem (error log, metric, /readyz
// failing) until it is fixed; check says to run setup.
func TestReplicaIdentityLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema + `
CREATE TABLE upload (id int NOT NULL, at date NOT NULL, file text NOT NULL DEFAULT '', PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE upload_2025 PARTITION OF upload FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');`,
		watch: photoWatch + `
  - table: upload
    columns: [file]
    storage: media`, httpListen: "127.0.0.1:0"})
	e.put("a.jpg", "b.jpg", "u.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'), (2, 'b.jpg')`)
	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)

	e.exec(`ALTER TABLE gallery_photo REPLICA IDENTITY DEFAULT`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	// A partition without REPLICA IDENTITY FULL (as a non-superuser
	// setup, without the event trigger, would leave it).
	e.exec(`ALTER EVENT TRIGGER ` + pgQueryString(t, e, `SELECT evtname::text FROM pg_event_trigger WHERE evtname LIKE 'cdc_cleaner%'`) + ` DISABLE`)
	e.exec(`CREATE TABLE upload_2026 PARTITION OF upload FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`)
	e.exec(`INSERT INTO upload VALUES (1, '2026-03-01', 'u.jpg')`)
	e.exec(`DELETE FROM upload WHERE id = 1`)
	e.settle()
	e.expect([]string{"a.jpg", "u.jpg"}, nil)

	var rows []string
	r, err := e.conn().Query(context.Background(), `SELECT storage, path, reason, source, detail FROM cdc_cleaner.failed_deletions ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var storage, path, reason, source, detail string
		if err := r.Scan(&storage, &path, &reason, &source, &detail); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, reason+" "+storage+" "+source)
		if !strings.Contains(detail, "1 DELETE") || !strings.Contains(detail, "cdc-cleaner scan --storage media") || path != "" {
			t.Errorf("record %s %s: path %q, detail %q", reason, source, path, detail)
		}
	}
	want := []string{"old_values_missing media public.gallery_photo.image", "old_values_missing media public.gallery_photo.thumbnail", "old_values_missing media public.upload.file"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("failed_deletions:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	if v := metric(t, addr, `cdc_cleaner_old_values_missing_total{table="public.gallery_photo"}`); v != 1 {
		t.Errorf(`cdc_cleaner_old_values_missing_total{table="public.gallery_photo"} = %v, want 1`, v)
	}
	eventually(t, 10*time.Second, "the running cleaner reports the schema problems", func() bool {
		code, body := readyz(t, addr)
		return code == 503 && strings.Contains(body, "schema problem") && metric(t, addr, "cdc_cleaner_schema_problems") >= 2
	})
	p.waitLog("the database no longer fits the configuration", 10*time.Second)
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, "lacks REPLICA IDENTITY FULL") || !strings.Contains(out, "upload_2026") {
		t.Errorf("check: exit %d, want 1 naming both problems:\n%s", code, out)
	}

	// Fixed: ready again.
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup: exit %d:\n%s", code, out)
	}
	eventually(t, 10*time.Second, "/readyz succeeds once fixed", func() bool {
		code, _ := readyz(t, addr)
		return code == 200 && metric(t, addr, "cdc_cleaner_schema_problems") == 0
	})
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	e.settle()
	e.expect(nil, []string{"b.jpg"})
}

// TestWatchedTableRecreated: DROP TABLE and CREATE TABLE of a watched table
// while the cleaner runs takes it out of the publication, so its changes no
// longer reach the cleaner, with nothing in the stream to say so. The
// running cleaner finds it (error log, cdc_cleaner_schema_problems, /readyz
// failing), check says to run setup, and after setup its changes are
// cleaned again; /readyz asks for a restart (and a scan) until then.
func TestWatchedTableRecreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0"})
	e.put("a.jpg", "b.jpg")
	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DROP TABLE gallery_photo`)
	e.exec(photoSchema)
	e.exec(`ALTER TABLE gallery_photo REPLICA IDENTITY FULL`)
	eventually(t, 10*time.Second, "the running cleaner reports the table missing from the publication", func() bool {
		code, body := readyz(t, addr)
		return code == 503 && strings.Contains(body, "does not cover") && metric(t, addr, "cdc_cleaner_schema_problems") >= 1
	})
	p.waitLog("the database no longer fits the configuration", 10*time.Second)
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, "does not cover") || !strings.Contains(out, "run cdc-cleaner setup") {
		t.Errorf("check: exit %d, want 1 saying to run setup:\n%s", code, out)
	}
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup: exit %d:\n%s", code, out)
	}
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'), (2, 'b.jpg')`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()
	e.expect([]string{"b.jpg"}, []string{"a.jpg"})
	// Its columns are not the ones the cleaner started with: the files of
	// the dropped table's rows are scan's, and a restart clears it.
	eventually(t, 10*time.Second, "/readyz asks for a restart after setup", func() bool {
		code, body := readyz(t, addr)
		return code == 503 && strings.Contains(body, "is not the column it was when the cleaner started")
	})
	p.stop()
	p = e.start()
	addr = p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)
	time.Sleep(2 * time.Second) // a periodic check
	if code, body := readyz(t, addr); code != 200 {
		t.Errorf("/readyz after the restart = %d %q, want 200", code, body)
	}
}

// TestRetypedToDroppedType: while the cleaner was stopped, a watched column
// was retyped to a domain, a row deleted, and the domain dropped again.
// The change's Relation message names a type the catalog no longer has:
// the cleaner does not guess how its values hold paths, it holds the slot
// and says so (cdc_cleaner_held, /readyz failing, an error naming table
// and column), instead of retrying a lookup that can never succeed.
func TestRetypedToDroppedType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0"})
	e.put("a.jpg", "b.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'), (2, 'b.jpg')`)
	e.exec(`CREATE DOMAIN path_d AS varchar(100)`)
	e.exec(`ALTER TABLE gallery_photo ALTER COLUMN image TYPE path_d`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.exec(`ALTER TABLE gallery_photo ALTER COLUMN image TYPE varchar(100)`)
	e.exec(`DROP DOMAIN path_d`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog("no longer exists in the catalog", 30*time.Second)
	eventually(t, 10*time.Second, "/readyz fails while held", func() bool {
		code, body := readyz(t, addr)
		return code == 503 && strings.Contains(body, "held")
	})
	if v := metric(t, addr, "cdc_cleaner_held"); v != 1 {
		t.Errorf("cdc_cleaner_held = %v, want 1", v)
	}
	e.expect([]string{"a.jpg", "b.jpg"}, nil)
}
