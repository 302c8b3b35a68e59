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

// TestWatchedColumnRenamedOrDropped: a watched column renamed or dropped
// while the cleaner runs no longer fits the configuration. The cleaner
// holds the slot at the first change after it (nothing is confirmed past
// it, and the file that change orphaned stays), logs an error naming
// table and column, sets cdc_cleaner_held and fails /readyz; check says
// the column is not found. Once the configuration says the new name (or
// drops the column), a restart goes on from where it held and loses
// nothing.
func TestWatchedColumnRenamedOrDropped(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		ddl    string
		config string // the watch entry's columns once fixed
	}{
		{"renamed", `ALTER TABLE gallery_photo RENAME COLUMN image TO picture`, "columns: [picture, thumbnail]"},
		{"dropped", `ALTER TABLE gallery_photo DROP COLUMN image`, "columns: [thumbnail]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0"})
			e.put("a.jpg", "a_t.jpg", "b_t.jpg", "c_t.jpg")
			e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES (1, 'a.jpg', 'a_t.jpg'), (2, '', 'b_t.jpg'), (3, '', 'c_t.jpg')`)
			p := e.start()
			addr := p.httpAddr(t)
			e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
			e.settle()
			e.expect(nil, []string{"a.jpg", "a_t.jpg"})

			e.exec(tt.ddl)
			e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
			after := pgQueryString(t, e, `SELECT pg_current_wal_insert_lsn()::text`)
			p.waitLog("the configuration no longer fits the table", 30*time.Second)
			if !strings.Contains(p.Logs(), `watched column \"image\" of public.gallery_photo`) {
				t.Errorf("the error does not name the table and column")
			}
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

			replaceInConfig(t, e, "columns: [image, thumbnail]", tt.config)
			e.start()
			e.settle()
			e.expect([]string{"c_t.jpg"}, []string{"b_t.jpg"})
		})
	}
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
