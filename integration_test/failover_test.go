package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// TestFailover: a primary and a physical standby from the same binaries on
// loopback, the cleaner streaming from the primary through a URL that names
// both (target_session_attrs=read-write, as libpq allows), deletions in
// flight, the primary stopped (immediate) and the standby promoted.
//
// From PostgreSQL 17 on, setup made a failover slot, the standby
// synchronizes it (sync_replication_slots) and the primary sends the
// cleaner only what the standby received (synchronized_standby_slots). The
// cleaner goes on streaming from the promoted standby by itself: every
// orphan whose deletion survived the failover is deleted once (moved to the
// trash once, counted once), no file a row of the promoted server
// references is touched, including those of transactions the primary
// acknowledged and the standby never received.
//
// Before 17 there are no failover slots: run stops, saying the slot did not
// come with the failover, and the README's recovery (setup, then scan)
// removes the orphans of the gap.
func TestFailover(t *testing.T) {
	t.Parallel()
	if cluster.External() {
		t.Skip("stops and promotes servers of its own, which an external server rules out")
	}
	ctx := context.Background()
	failoverSlots := cluster.Version() >= 170000
	primary, err := pgtest.StartOwn(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Stop() })
	standbyConf := ""
	if failoverSlots {
		standbyConf = "sync_replication_slots = on\n"
	}
	standby, err := primary.Standby(ctx, "standby1", standbyConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop() })

	e := newEnv(t, envOptions{
		cluster: primary, schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0", logLevel: "info",
		configURL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/{{db}}?sslmode=disable&target_session_attrs=read-write", primary.Port(), standby.Port()),
	})
	if failoverSlots {
		pgtest.Exec(t, primary.AdminURL(), `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`)
		pgtest.Exec(t, primary.AdminURL(), `SELECT pg_reload_conf()`)
		out, _ := e.cli("check")
		for _, want := range []string{"is a failover slot; the cleaner receives only what the standbys on standby1 have received"} {
			if !strings.Contains(out, want) {
				t.Errorf("check does not say %q:\n%s", want, out)
			}
		}
	} else {
		out, _ := e.cli("check")
		if want := "has no failover slots: after a failover the promoted standby has no slot"; !strings.Contains(out, want) {
			t.Errorf("check with a standby does not say %q:\n%s", want, out)
		}
	}

	const kept, orphans = 20, 300
	var all []string
	for i := range kept {
		all = append(all, fmt.Sprintf("kept/%03d.jpg", i))
	}
	for i := range orphans {
		all = append(all, fmt.Sprintf("o/%03d.jpg", i))
	}
	e.put(all...)
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (id, image) SELECT i, 'kept/' || lpad(i::text, 3, '0') || '.jpg' FROM generate_series(0, %d) AS i`, kept-1))
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (id, image) SELECT 1000 + i, 'o/' || lpad(i::text, 3, '0') || '.jpg' FROM generate_series(0, %d) AS i`, orphans-1))

	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)
	if failoverSlots {
		// A synchronized slot stays temporary, and a promotion drops it,
		// until the standby's copy has caught up with the primary's.
		eventually(t, 60*time.Second, "the standby to synchronize the failover slot", func() bool {
			return pgtest.QueryString(t, standby.URL(e.db), `SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1 AND synced AND NOT temporary`, e.slot) == "1"
		})
	}

	// Deletions in flight: the first 150 orphans' rows, one transaction
	// each, while the cleaner works on them.
	conn := e.conn()
	for i := range 150 {
		if _, err := conn.Exec(ctx, `DELETE FROM gallery_photo WHERE id = $1`, 1000+i); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	// The cluster commits with synchronous_commit off; a commit with it on
	// writes out the WAL of those before it, and the standby receives it.
	e.exec(`BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'test', 'flush'); COMMIT`)
	eventually(t, 30*time.Second, "the standby to receive the deletions", func() bool {
		return pgtest.QueryString(t, primary.AdminURL(), `SELECT count(*)::text FROM pg_stat_replication WHERE application_name = 'standby' AND flush_lsn >= pg_current_wal_flush_lsn()`) == "1"
	})
	var lost int
	if failoverSlots {
		// Then transactions the standby never receives: its walreceiver
		// is cut off first. The primary acknowledges them; the cleaner
		// must not act on them, since after the failover they never
		// happened.
		pgtest.Exec(t, standby.AdminURL(), `ALTER SYSTEM SET primary_conninfo = ''`)
		pgtest.Exec(t, standby.AdminURL(), `SELECT pg_reload_conf()`)
		eventually(t, 30*time.Second, "the standby to disconnect", func() bool {
			return pgtest.QueryString(t, primary.AdminURL(), `SELECT count(*)::text FROM pg_stat_replication WHERE application_name = 'standby'`) == "0"
		})
		e.exec(`DELETE FROM gallery_photo WHERE id BETWEEN 1150 AND 1179`)
		lost = 30
	}
	if err := primary.StopServer("immediate"); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	e.url = standby.URL(e.db)
	if failoverSlots {
		// The promoted standby no longer follows anyone.
		pgtest.Exec(t, standby.AdminURL(), `ALTER SYSTEM RESET primary_conninfo`)
	}
	survived := pgtest.QueryString(t, e.url, `SELECT count(*)::text FROM generate_series(1000, 1149) AS i WHERE NOT EXISTS (SELECT 1 FROM gallery_photo WHERE id = i)`)
	t.Logf("%s of 150 acknowledged deletions survived the failover; %d more were never received by the standby", survived, lost)

	if !failoverSlots {
		// No failover slot: run says what happened and stops.
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("run still runs a minute after the failover, without its slot:\n%s", tail(p.Logs(), 30))
		}
		for _, want := range []string{"does not exist here, although cdc-cleaner setup recorded creating it at", "runs on timeline 2", "then cdc-cleaner scan"} {
			if !strings.Contains(p.Logs(), want) {
				t.Errorf("run's log does not say %q:\n%s", want, tail(p.Logs(), 30))
			}
		}
		// The README's recovery: setup (a new slot), run, then scan for
		// what was orphaned in between.
		if out, code := e.cli("setup"); code != 0 {
			t.Fatalf("setup on the promoted standby exited %d:\n%s", code, out)
		}
		p = e.start()
		p.waitLog(`"streaming"`, 30*time.Second)
	}

	// More deletions on the promoted standby.
	e.exec(`DELETE FROM gallery_photo WHERE id BETWEEN 1180 AND 1199`)
	e.settle()
	if !failoverSlots {
		out, code := e.cli("scan", "--delete", "--min-age", "0s")
		if code != 0 {
			t.Fatalf("scan --delete exited %d:\n%s", code, out)
		}
		t.Logf("scan after the failover:\n%s", tail(out, 5))
	}

	// What the promoted server says is referenced stays; every other
	// orphan is gone.
	referenced := map[string]bool{}
	for _, path := range strings.Split(pgtest.QueryString(t, e.url, `SELECT coalesce(string_agg(image, ','), '') FROM gallery_photo`), ",") {
		referenced[path] = true
	}
	var present, gone []string
	for _, path := range all {
		if referenced[path] {
			present = append(present, path)
		} else {
			gone = append(gone, path)
		}
	}
	e.expect(present, gone)
	for _, path := range gone {
		if !e.exists(filepath.Join(".trash", path)) {
			t.Errorf("%s is gone, but not in the trash", path)
		}
	}
	if failoverSlots {
		_, body := get(t, "http://"+addr+"/metrics")
		deleted := metricValue(body, `cdc_cleaner_deleted_total{storage="media"}`)
		absent := metricValue(body, `cdc_cleaner_absent_total{storage="media"}`)
		t.Logf("after the failover: %v deleted, %v found already absent (replayed), %d referenced kept, %d orphans gone", deleted, absent, len(present), len(gone))
		if int(deleted) != len(gone) {
			t.Errorf("the cleaner counted %v deletions, want %d: each orphan once", deleted, len(gone))
		}
		// The promoted standby's copy of the slot may be behind the
		// primary's (it is synchronized now and then), so the cleaner
		// may be sent again what it settled; the journal, replicated
		// with everything else, tells it so, and nothing is counted as
		// a file found missing.
		if absent != 0 {
			t.Errorf("%v removals were counted as files already absent after the failover; replays of settled removals must be told apart:\n%s", absent, tail(p.Logs(), 20))
		}
		replayed := 0
		for _, l := range strings.Split(p.Logs(), "\n") {
			if strings.Contains(l, "removals replayed from the slot were done before") {
				var n struct{ Replayed int }
				if err := json.Unmarshal([]byte(l), &n); err == nil {
					replayed += n.Replayed
				}
			}
		}
		t.Logf("%d removals replayed after the failover were recognized as settled before", replayed)
	}
	if code := p.stop(); code != 0 {
		t.Errorf("run exited %d after SIGTERM:\n%s", code, tail(p.Logs(), 20))
	}
}
