package integration_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/migrations"
)

// TestSetupRefusesForeignPublication: a publication of the configured name
// that setup did not create (another consumer's, covering another table
// and publishing inserts) is never changed: setup exits 1 naming what to
// rename, check warns, teardown leaves it and exits 1.
func TestSetupRefusesForeignPublication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema + `CREATE TABLE orders (id int PRIMARY KEY, note text);`, watch: photoWatch, noSetup: true})
	e.exec(`CREATE PUBLICATION ` + e.pub + ` FOR TABLE orders WITH (publish = 'insert, update')`)
	before := publicationState(t, e)

	out, code := e.cli("setup")
	if code != 1 || !strings.Contains(out, "was not created by cdc-cleaner setup") || !strings.Contains(out, "postgres.publication") {
		t.Errorf("setup: exit %d, want 1 naming the publication and postgres.publication:\n%s", code, out)
	}
	if after := publicationState(t, e); after != before {
		t.Errorf("setup changed a publication it did not create:\nbefore %s\nafter  %s", before, after)
	}
	if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot); n != "0" {
		t.Errorf("setup created the slot although it refused the publication")
	}

	// The publication made by hand for the cleaner, marked as setup's:
	// setup takes it over and makes it cover exactly the watched tables.
	e.exec(`COMMENT ON PUBLICATION ` + e.pub + ` IS 'managed by cdc-cleaner setup'`)
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup of a marked publication: exit %d:\n%s", code, out)
	}
	if got := publicationState(t, e); !strings.Contains(got, "gallery_photo") || strings.Contains(got, "orders") {
		t.Errorf("setup did not make the marked publication cover exactly the watched tables: %s", got)
	}

	// Unmarked again (another consumer's, say): teardown leaves it.
	e.exec(`COMMENT ON PUBLICATION ` + e.pub + ` IS NULL`)
	out, code = e.cli("check")
	if !strings.Contains(out, "was not created by cdc-cleaner setup") {
		t.Errorf("check does not say the publication is not setup's (exit %d):\n%s", code, out)
	}
	out, code = e.cli("teardown")
	if code != 1 || !strings.Contains(out, "left as it is") {
		t.Errorf("teardown: exit %d, want 1 saying it left the publication:\n%s", code, out)
	}
	if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_publication WHERE pubname = $1`, e.pub); n != "1" {
		t.Errorf("teardown dropped a publication setup did not create")
	}
	if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot); n != "0" {
		t.Errorf("teardown left the cleaner's own slot")
	}
}

// TestForeignSlots: a slot of the configured name that is not the
// cleaner's is never used, moved or dropped. A test_decoding slot: setup,
// run and teardown refuse it, and no message suggests dropping it. A
// pgoutput slot another consumer reads: run refuses to start, so the slot
// keeps that consumer's unread change; setup --adopt-slot records a slot
// that is the cleaner's after all.
func TestForeignSlots(t *testing.T) {
	t.Parallel()

	t.Run("another plugin", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})
		e.exec(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, e.slot)
		out, code := e.cli("setup")
		if code != 1 || !strings.Contains(out, "test_decoding") || !strings.Contains(out, "set postgres.slot to another name") {
			t.Errorf("setup: exit %d, want 1 naming the plugin and what to rename:\n%s", code, out)
		}
		out, code = e.cli("run")
		if code != 2 || !strings.Contains(out, "test_decoding") {
			t.Errorf("run: exit %d, want 2 naming the plugin:\n%s", code, out)
		}
		out, code = e.cli("teardown")
		if code != 1 || !strings.Contains(out, "belongs to another consumer") {
			t.Errorf("teardown: exit %d, want 1 saying the slot is another consumer's:\n%s", code, out)
		}
		for _, o := range []string{out} {
			if strings.Contains(strings.ToLower(o), "drop it") {
				t.Errorf("a message suggests dropping another consumer's slot:\n%s", o)
			}
		}
		if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1 AND plugin = 'test_decoding'`, e.slot); n != "1" {
			t.Errorf("the test_decoding slot is gone")
		}
	})

	t.Run("another pgoutput consumer", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})
		// The cleaner's publication, made by hand and marked as setup's,
		// and another consumer's slot of the configured name, with a
		// change that consumer has not read yet.
		e.exec(`CREATE PUBLICATION ` + e.pub + ` FOR TABLE gallery_photo WITH (publish = 'update, delete, truncate')`)
		e.exec(`COMMENT ON PUBLICATION ` + e.pub + ` IS 'managed by cdc-cleaner setup'`)
		e.exec(`CREATE PUBLICATION other_consumer FOR TABLE gallery_photo`)
		e.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, e.slot)
		e.exec(`INSERT INTO gallery_photo (image) VALUES ('a.jpg')`)
		unread := pgQueryString(t, e, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot)

		out, code := e.cli("setup")
		if code != 1 || !strings.Contains(out, "was not created by cdc-cleaner setup") || !strings.Contains(out, "--adopt-slot") {
			t.Errorf("setup: exit %d, want 1 saying the slot is not setup's:\n%s", code, out)
		}
		// Nor does run stream from it.
		e.exec(`ALTER TABLE gallery_photo REPLICA IDENTITY FULL`)
		e.exec(migrations.Schema) // the cleaner's own schema, as setup creates it
		out, code = e.cli("run")
		if code != 2 || !strings.Contains(out, "was not created by cdc-cleaner setup") {
			t.Errorf("run: exit %d, want 2 refusing the slot:\n%s", code, out)
		}
		if got := pgQueryString(t, e, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot); got != unread {
			t.Errorf("the other consumer's slot moved from %s to %s", unread, got)
		}
		out, code = e.cli("teardown")
		if code != 1 || pgQueryString(t, e, `SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot) != "1" {
			t.Errorf("teardown: exit %d, and the slot must stay:\n%s", code, out)
		}

		// The operator says it is the cleaner's after all.
		if out, code := e.cli("setup", "--adopt-slot"); code != 0 {
			t.Fatalf("setup --adopt-slot: exit %d:\n%s", code, out)
		}
		if out, code := e.cli("check"); code != 0 {
			t.Errorf("check after --adopt-slot: exit %d:\n%s", code, out)
		}
		e.put("a.jpg")
		p := e.start()
		p.waitLog(`"streaming"`, 30*time.Second)
		e.exec(`DELETE FROM gallery_photo`)
		e.settle()
		e.expect(nil, []string{"a.jpg"})
	})
}

// TestSetupTakesOverEarlierSetup: a publication made by an earlier
// version of setup (no mark, but its event trigger function) is the
// cleaner's: setup updates it and marks it, and removes the trigger no
// partitioned table needs; its slot needs --adopt-slot.
func TestSetupTakesOverEarlierSetup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema + `CREATE TABLE gone (f text);`, watch: photoWatch, noSetup: true})
	e.exec(`ALTER TABLE gallery_photo REPLICA IDENTITY FULL`)
	e.exec(`CREATE PUBLICATION ` + e.pub + ` FOR TABLE gallery_photo, gone WITH (publish = 'update, delete')`)
	// The schema of an earlier version, whose failed_deletions could hold
	// a failure twice (a replay after kill -9).
	e.exec(`CREATE SCHEMA cdc_cleaner;
CREATE TABLE cdc_cleaner.failed_deletions (
    id bigserial PRIMARY KEY, storage text NOT NULL, path text NOT NULL, reason text NOT NULL,
    detail text NOT NULL DEFAULT '', source text NOT NULL DEFAULT '', commit_lsn pg_lsn,
    commit_time timestamptz, recorded_at timestamptz NOT NULL DEFAULT now());
INSERT INTO cdc_cleaner.failed_deletions (storage, path, reason, source, commit_lsn) VALUES
    ('media', '../x', 'rejected_path', 'public.gallery_photo.image', '0/10'),
    ('media', '../x', 'rejected_path', 'public.gallery_photo.image', '0/10'),
    ('media', '../x', 'rejected_path', 'public.gallery_photo.image', '0/20');`)
	e.exec(oldEventTrigger)
	e.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, e.slot)

	out, code := e.cli("setup")
	if code != 1 || !strings.Contains(out, "--adopt-slot") {
		t.Fatalf("setup without --adopt-slot: exit %d, want 1 asking for it:\n%s", code, out)
	}
	if out, code := e.cli("setup", "--adopt-slot"); code != 0 {
		t.Fatalf("setup --adopt-slot: exit %d:\n%s", code, out)
	}
	if got := publicationState(t, e); strings.Contains(got, "gone") || !strings.Contains(got, "managed by cdc-cleaner setup") {
		t.Errorf("setup did not take over the earlier setup's publication: %s", got)
	}
	if n := pgQueryString(t, e, `SELECT count(*)::text FROM pg_event_trigger WHERE evtname LIKE 'cdc_cleaner%'`); n != "0" {
		t.Errorf("setup left the earlier setup's event trigger, which no partitioned table needs")
	}
	if got := pgQueryString(t, e, `SELECT string_agg(commit_lsn::text, ',' ORDER BY commit_lsn) FROM cdc_cleaner.failed_deletions`); got != "0/10,0/20" {
		t.Errorf("failed_deletions after the upgrade holds the failures of %s, want each once: 0/10,0/20", got)
	}
	if out, code := e.cli("check"); code != 0 {
		t.Errorf("check: exit %d:\n%s", code, out)
	}
	if out, code := e.cli("teardown"); code != 0 {
		t.Errorf("teardown: exit %d:\n%s", code, out)
	}
}

// publicationState describes a publication: what it publishes, its
// tables and its comment.
func publicationState(t *testing.T, e *env) string {
	t.Helper()
	return pgQueryString(t, e, `SELECT format('ins=%s upd=%s del=%s trunc=%s tables=%s comment=%s', p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
			(SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = p.pubname),
			coalesce(obj_description(p.oid, 'pg_publication'), ''))
		FROM pg_publication p WHERE p.pubname = $1`, e.pub)
}

// TestSlotNeverLeftUnrecorded: the statement that creates the slot (as a
// migration tool runs it, from setup --print) never leaves a slot that
// cdc_cleaner.slots does not record, which would retain WAL while setup,
// run and teardown all refuse it: without the table it creates nothing,
// and when recording fails it drops the slot again.
func TestSlotNeverLeftUnrecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})
	script, code := e.cli("setup", "--print")
	if code != 0 {
		t.Fatalf("setup --print: exit %d:\n%s", code, script)
	}
	i := strings.Index(script, "-- the logical replication slot")
	if i < 0 {
		t.Fatalf("no slot statement in:\n%s", script)
	}
	slot := script[i:]
	slots := func() string {
		return pgQueryString(t, e, `SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot)
	}
	c := e.conn()
	if _, err := c.Exec(context.Background(), slot); err == nil || !strings.Contains(err.Error(), "cannot record the slot") {
		t.Errorf("slot statement without cdc_cleaner.slots: %v, want a refusal", err)
	}
	if n := slots(); n != "0" {
		t.Errorf("%s slots left without the table to record them", n)
	}
	e.exec(migrations.Schema)
	e.exec(`CREATE FUNCTION cdc_cleaner.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'recording refused'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON cdc_cleaner.slots FOR EACH ROW EXECUTE FUNCTION cdc_cleaner.refuse()`)
	if _, err := c.Exec(context.Background(), slot); err == nil || !strings.Contains(err.Error(), "recording refused") {
		t.Errorf("slot statement whose record fails: %v, want that error", err)
	}
	if n := slots(); n != "0" {
		t.Errorf("%s slots left after recording failed", n)
	}
	e.exec(`DROP TRIGGER refuse ON cdc_cleaner.slots`)
	if _, err := c.Exec(context.Background(), slot); err != nil {
		t.Fatalf("slot statement: %v", err)
	}
	if n := slots(); n != "1" {
		t.Errorf("%s slots after the statement succeeded, want 1", n)
	}
}

// TestPublicationWithoutInsertIsUpgraded: a publication an earlier setup
// made publishes no inserts, which the cleaner needs to see files
// referenced again. check reports it, run refuses to start saying what to
// do, and setup upgrades it in place.
func TestPublicationWithoutInsertIsUpgraded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.exec(`ALTER PUBLICATION ` + e.pub + ` SET (publish = 'update, delete, truncate')`)
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, "does not publish insert") || !strings.Contains(out, "run cdc-cleaner setup") {
		t.Fatalf("check exited %d, want 1 naming the missing inserts and setup:\n%s", code, out)
	}
	out, code = e.cli("run")
	if code != 2 || !strings.Contains(out, "does not publish insert") {
		t.Fatalf("run exited %d, want 2 refusing with the reason:\n%s", code, out)
	}
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	if got := publicationState(t, e); !strings.HasPrefix(got, "ins=t upd=t del=t trunc=t tables=gallery_photo") {
		t.Errorf("after setup: %s", got)
	}
	if out, code := e.cli("check"); code != 0 {
		t.Fatalf("check after setup exited %d:\n%s", code, out)
	}
}
