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

// replaceInConfig edits the configuration file.
func replaceInConfig(t *testing.T, e *env, old, new string) {
	t.Helper()
	cfg := readFile(t, e.cfgPath)
	if !strings.Contains(cfg, old) {
		t.Fatalf("%q not in the configuration:\n%s", old, cfg)
	}
	writeFile(t, e.cfgPath, strings.Replace(cfg, old, new, 1))
}

// TestWatchedColumnRenamed: a watched column renamed while the cleaner
// runs, with changes from before the rename still waiting (delete_delay):
// the cleaner follows the rename, in the stream and in the reference check
// (the catalog says the column, by its table and attribute number, is now
// called picture), so those changes and the ones after settle; check says
// the configuration names a column that is not there, and /readyz fails
// until it is fixed. Killed before the changes from before the rename were
// confirmed and restarted with the new name, it reads those changes, whose
// Relation message still says image, under the new name: nothing jams.
func TestWatchedColumnRenamed(t *testing.T) {
	t.Parallel()
	photos := `INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'a.jpg', 'a_t.jpg'), (2, 'b.jpg', 'b_t.jpg'), (3, 'keep.jpg', '')`
	t.Run("followed while running", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0", extra: "delete_delay: 2s"})
		e.put("a.jpg", "a_t.jpg", "b.jpg", "b_t.jpg", "keep.jpg")
		e.exec(photos)
		p := e.start()
		addr := p.httpAddr(t)
		p.waitLog(`"streaming"`, 30*time.Second)
		e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
		e.exec(`ALTER TABLE gallery_photo RENAME COLUMN image TO picture`)
		e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
		e.exec(`INSERT INTO gallery_photo (id, picture) VALUES (4, 'keep.jpg')`)
		e.exec(`DELETE FROM gallery_photo WHERE id = 3`)
		e.settle()
		e.expect([]string{"keep.jpg"}, []string{"a.jpg", "a_t.jpg", "b.jpg", "b_t.jpg"})
		if !strings.Contains(p.Logs(), `is \"picture\" at this point of the stream (renamed): the cleaner follows it`) {
			t.Errorf("the cleaner did not say it follows the rename")
		}
		if v := metric(t, addr, "cdc_cleaner_held"); v != 0 {
			t.Errorf("cdc_cleaner_held = %v, want 0: a rename is followed", v)
		}
		eventually(t, 10*time.Second, "/readyz fails while the configuration names the old column", func() bool {
			code, body := readyz(t, addr)
			return code == 503 && strings.Contains(body, `column "image" not found`)
		})
		out, code := e.cli("check")
		if code != 1 || !strings.Contains(out, `column "image" not found`) || !strings.Contains(out, "put its new name in the configuration") {
			t.Errorf("check: exit %d, want 1 saying what to do:\n%s", code, out)
		}
	})
	t.Run("replayed under the new name", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, extra: "delete_delay: 30s"})
		e.put("a.jpg", "a_t.jpg", "b.jpg", "b_t.jpg", "keep.jpg")
		e.exec(photos)
		before := pgtest.SlotConfirmedFlush(t, e.url, e.slot)
		p := e.start()
		p.waitLog(`"streaming"`, 30*time.Second)
		e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
		e.exec(`ALTER TABLE gallery_photo RENAME COLUMN image TO picture`)
		e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
		p.waitLog("the cleaner follows it", 30*time.Second)
		p.kill()
		if got := pgtest.SlotConfirmedFlush(t, e.url, e.slot); got != before {
			t.Fatalf("the slot moved from %s to %s during the delay: nothing is left to replay", before, got)
		}
		e.expect([]string{"a.jpg", "b.jpg"}, nil)
		replaceInConfig(t, e, "columns: [image, thumbnail]", "columns: [picture, thumbnail]")
		replaceInConfig(t, e, "delete_delay: 30s", "delete_delay: 0s")
		p = e.start()
		e.settle()
		e.expect([]string{"keep.jpg"}, []string{"a.jpg", "a_t.jpg", "b.jpg", "b_t.jpg"})
		if strings.Contains(p.Logs(), "no longer fits") {
			t.Errorf("the restarted cleaner held at the changes from before the rename:\n%s", p.Logs())
		}
		if out, code := e.cli("check"); code != 0 {
			t.Errorf("check with the new name: exit %d:\n%s", code, out)
		}
	})
}

// TestWatchedColumnDropped: a watched column dropped while the cleaner
// runs, with a change from before the drop still waiting (delete_delay).
// That change settles (the dropped column references nothing any more).
// The first change after the drop no longer fits the configuration: the
// cleaner holds the slot there (nothing is confirmed past it, and the file
// that change orphaned stays), logs an error naming table and column, sets
// cdc_cleaner_held and fails /readyz; check says the column is not found.
// Once the configuration drops the column too, a restart goes on from
// where it held and loses nothing.
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
	after := pgQueryString(t, e, `SELECT pg_current_wal_insert_lsn()::text`)
	p.waitLog("the configuration no longer fits the table", 30*time.Second)
	if !strings.Contains(p.Logs(), `watched column \"image\" of public.gallery_photo`) {
		t.Errorf("the error does not name the table and column")
	}
	eventually(t, 10*time.Second, "the change before the drop settles", func() bool {
		return !e.exists("a.jpg") && !e.exists("a_t.jpg")
	})
	eventually(t, 10*time.Second, "/readyz fails while held", func() bool {
		code, _ := readyz(t, addr)
		return code == 503
	})
	if v := metric(t, addr, "cdc_cleaner_held"); v != 1 {
		t.Errorf("cdc_cleaner_held = %v, want 1", v)
	}
	time.Sleep(time.Second) // status updates go on while held
	if got := pgtest.SlotConfirmedFlush(t, e.url, e.slot); !lsnBefore(t, e, got, after) {
		t.Errorf("slot confirmed %s, past the held change (which ends before %s)", got, after)
	}
	e.expect([]string{"b_t.jpg"}, nil)
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, `column "image" not found`) {
		t.Errorf("check: exit %d, want 1 saying the column is not found:\n%s", code, out)
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM while held, want 0", code)
	}

	replaceInConfig(t, e, "columns: [image, thumbnail]", "columns: [thumbnail]")
	e.start()
	e.settle()
	e.expect([]string{"c_t.jpg"}, []string{"b_t.jpg"})
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
// cleaned again.
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
	eventually(t, 10*time.Second, "/readyz succeeds once fixed", func() bool {
		code, _ := readyz(t, addr)
		return code == 200
	})
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'), (2, 'b.jpg')`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()
	e.expect([]string{"b.jpg"}, []string{"a.jpg"})
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
