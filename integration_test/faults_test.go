package integration_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// putMany creates n files named dir/NNNNNN.jpg and rows referencing them,
// fast: files directly, rows with generate_series.
func putMany(t *testing.T, e *env, dir string, n int) {
	t.Helper()
	full := filepath.Join(e.root, dir)
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(full, fmt.Sprintf("%06d.jpg", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (image) SELECT '%s/' || lpad(i::text, 6, '0') || '.jpg' FROM generate_series(0, %d) AS i`, dir, n-1))
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

// TestLargeTransaction deletes 100,000 rows in one transaction: the cleaner
// streams it in batches and deletes every file.
func TestLargeTransaction(t *testing.T) {
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	const n = 100_000
	putMany(t, e, "big", n)
	e.put("kept/referenced.jpg")
	e.exec(`INSERT INTO gallery_photo (image) VALUES ('kept/referenced.jpg')`)
	p := e.start()
	start := time.Now()
	e.exec(`DELETE FROM gallery_photo WHERE image LIKE 'big/%'`)
	pgtest.WaitSettled(t, e.url, e.slot, 5*time.Minute)
	t.Logf("%d-row DELETE settled in %s", n, time.Since(start).Round(time.Millisecond))
	if left := countFiles(t, filepath.Join(e.root, "big")); left != 0 {
		t.Fatalf("%d of %d files left", left, n)
	}
	e.expect([]string{"kept/referenced.jpg"}, nil)
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				t.Logf("cleaner peak resident memory: %s", strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
			}
		}
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// TestKill9AndRestartLosesNothing kills the cleaner in the middle of a large
// transaction; the restarted cleaner replays it from the slot and deletes
// every file, while referenced ones stay.
func TestKill9AndRestartLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	const n = 20_000
	putMany(t, e, "k", n)
	e.put("k_keep/shared.jpg")
	e.exec(`INSERT INTO gallery_photo (image) VALUES ('k_keep/shared.jpg'), ('k_keep/shared.jpg')`)
	before := pgtest.SlotConfirmedFlush(t, e.url, e.slot)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo WHERE image LIKE 'k/%' OR id = (SELECT min(id) FROM gallery_photo WHERE image = 'k_keep/shared.jpg')`)
	// Wait until deleting has begun, then kill -9.
	deadline := time.Now().Add(time.Minute)
	for countFiles(t, filepath.Join(e.root, "k")) == n {
		if time.Now().After(deadline) {
			t.Fatalf("no file deleted within a minute:\n%s", p.Logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()
	left := countFiles(t, filepath.Join(e.root, "k"))
	t.Logf("killed with %d of %d files left (slot confirmed %s before)", left, n, before)
	if left == 0 {
		t.Log("all files were deleted before the kill; the restart still has to settle the transaction")
	}
	e.start()
	e.settle()
	if left := countFiles(t, filepath.Join(e.root, "k")); left != 0 {
		t.Fatalf("%d files left after restart", left)
	}
	e.expect([]string{"k_keep/shared.jpg"}, nil)
}

// TestFailureRecordedOnceAfterReplay: a failure recorded, then a kill -9
// before the status update confirms its transaction: the restarted cleaner
// replays the transaction and the failure is still recorded once.
func TestFailureRecordedOnceAfterReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, '../outside/secret.txt'), (2, 'x//y.jpg')`)
	// A status interval no test waits for: the kill comes before the
	// transaction is confirmed.
	cfg := readFile(t, e.cfgPath)
	slow := strings.Replace(cfg, "status_interval: 200ms", "status_interval: 1h", 1)
	if slow == cfg {
		t.Fatal("no status_interval in the configuration")
	}
	writeFile(t, e.cfgPath, slow)
	before := pgtest.SlotConfirmedFlush(t, e.url, e.slot)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo`)
	deadline := time.Now().Add(time.Minute)
	for len(e.failed()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the failures were not recorded within a minute:\n%s", p.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	if got := pgtest.SlotConfirmedFlush(t, e.url, e.slot); got != before {
		t.Fatalf("the slot moved from %s to %s before the kill: the replay this test is about will not happen", before, got)
	}
	writeFile(t, e.cfgPath, cfg)
	p = e.start()
	e.settle()
	if !strings.Contains(p.Logs(), "rejected_path") {
		t.Errorf("the restarted cleaner did not settle the failures again:\n%s", p.Logs())
	}
	var n int
	if err := e.conn().QueryRow(context.Background(), `SELECT count(*) FROM cdc_cleaner.failed_deletions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("failed_deletions has %d rows after the replay, want 2 (one per failure)", n)
	}
}

// TestTerminatedConnectionReconnects terminates the walsender; the cleaner
// reconnects and goes on.
func TestTerminatedConnectionReconnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("t/1.jpg", "t/2.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 't/1.jpg'), (2, 't/2.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()
	var pid int
	if err := e.conn().QueryRow(context.Background(), `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	e.exec(`SELECT pg_terminate_backend($1)`, pid)
	// A change made while the cleaner is disconnected is picked up after
	// the reconnect.
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	e.settle()
	e.expect(nil, []string{"t/1.jpg", "t/2.jpg"})
	if !strings.Contains(p.Logs(), "reconnecting") {
		t.Errorf("no reconnect was logged")
	}
}

// TestDryRunDeletesNothingAndLeavesChanges: --dry-run logs what it would
// delete, deletes nothing and confirms nothing, so a later real run sees
// the same changes.
func TestDryRunDeletesNothingAndLeavesChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("d/1.jpg", "d/2.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'd/1.jpg'), (2, 'd/2.jpg')`)
	before := pgtest.SlotConfirmedFlush(t, e.url, e.slot)
	dry := e.start("--dry-run")
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.exec(`UPDATE gallery_photo SET image = '' WHERE id = 2`)
	// Two transactions, settled by workers in parallel: either may be
	// logged first.
	dry.waitLog(`d/2.jpg`, 30*time.Second)
	dry.waitLog(`d/1.jpg`, 30*time.Second)
	if !strings.Contains(dry.Logs(), "would delete") || !strings.Contains(dry.Logs(), "d/1.jpg") {
		t.Fatalf("dry run did not log both deletions:\n%s", dry.Logs())
	}
	if code := dry.stop(); code != 0 {
		t.Fatalf("dry run exit code %d", code)
	}
	e.expect([]string{"d/1.jpg", "d/2.jpg"}, nil)
	if after := pgtest.SlotConfirmedFlush(t, e.url, e.slot); after != before {
		t.Fatalf("dry run moved the slot from %s to %s", before, after)
	}
	e.start()
	e.settle()
	e.expect(nil, []string{"d/1.jpg", "d/2.jpg"})
}

// TestSecondInstanceIsStandby: a second run with the same config waits for
// the slot and says so once.
func TestSecondInstanceIsStandby(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	first := e.start()
	first.waitLog(`"streaming"`, 30*time.Second)
	second := e.start()
	second.waitLog("in use by PID", 30*time.Second)
	time.Sleep(3 * time.Second)
	if n := strings.Count(second.Logs(), "in use by PID"); n != 1 {
		t.Errorf("standby logged 'in use' %d times, want once", n)
	}
	first.kill()
	second.waitLog(`"streaming"`, 30*time.Second)
	e.put("sb/1.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'sb/1.jpg')`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()
	e.expect(nil, []string{"sb/1.jpg"})
}

// TestKeepalivesWhileBlocked: while every worker waits on a reference check
// that a lock blocks, the stream's buffers fill and the reader stops
// reading; it must still answer the server within wal_sender_timeout (2s
// here, for the cleaner's connections only), so the slot is never dropped
// for a timeout, and everything is deleted once the lock goes.
func TestKeepalivesWhileBlocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: photoSchema + `CREATE TABLE legacy_upload (file text);`,
		watch: photoWatch + `
protect:
  - table: legacy_upload
    columns: [file]
    storage: media`,
		urlParams: "options=-c%20wal_sender_timeout%3D2s",
	})
	const n = 20_000
	putMany(t, e, "blk", n)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)

	locker := e.conn()
	ctx := context.Background()
	if _, err := locker.Exec(ctx, "BEGIN; LOCK TABLE legacy_upload IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	e.exec(`DELETE FROM gallery_photo WHERE image LIKE 'blk/%'`)
	time.Sleep(8 * time.Second) // four wal_sender_timeouts
	if left := countFiles(t, filepath.Join(e.root, "blk")); left != n {
		t.Fatalf("%d files deleted while the reference check was blocked", n-left)
	}
	if _, err := locker.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if left := countFiles(t, filepath.Join(e.root, "blk")); left != 0 {
		t.Fatalf("%d files left", left)
	}
	if strings.Contains(p.Logs(), "reconnecting") {
		t.Fatalf("the replication connection was lost while blocked:\n%s", p.Logs())
	}
}

// TestServerRestart restarts PostgreSQL (immediate mode: a crash) while the
// cleaner runs; it reconnects with backoff, and a change committed just
// before the crash and one made after it are both handled. It is not
// parallel: the restart would disturb other tests.
func TestServerRestart(t *testing.T) {
	if cluster.External() {
		t.Skip("cannot restart an external server (CDC_TEST_DATABASE_URL)")
	}
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("r/before.jpg", "r/after.jpg", "r/kept.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'r/before.jpg'), (2, 'r/after.jpg'), (3, 'r/kept.jpg')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	if err := cluster.Restart("immediate"); err != nil {
		t.Fatal(err)
	}
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	e.settle()
	e.expect([]string{"r/kept.jpg"}, []string{"r/before.jpg", "r/after.jpg"})
	if !strings.Contains(p.Logs(), "reconnecting") {
		t.Errorf("no reconnect was logged")
	}
}

// TestTruncateIsWarned: TRUNCATE cannot name its files; the cleaner says so,
// naming the table, deletes nothing and goes on.
func TestTruncateIsWarned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("tr/1.jpg", "tr/2.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'tr/1.jpg')`)
	p := e.start()
	e.exec(`TRUNCATE gallery_photo`)
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (2, 'tr/2.jpg')`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	e.settle()
	e.expect([]string{"tr/1.jpg"}, []string{"tr/2.jpg"})
	logs := p.Logs()
	if !strings.Contains(logs, "TRUNCATE") || !strings.Contains(logs, "public.gallery_photo") || !strings.Contains(logs, "cdc-cleaner scan") {
		t.Errorf("no warning naming the truncated table and scan:\n%s", logs)
	}
	// Recorded where the operator and scan find it: one row per watched
	// column.
	if f := e.failed(); len(f) != 1 || f[""] != "truncated" {
		t.Errorf("failed_deletions = %v, want the TRUNCATE recorded as truncated", f)
	}
	var sources string
	if err := e.conn().QueryRow(context.Background(), `SELECT string_agg(source, ',' ORDER BY source) FROM cdc_cleaner.failed_deletions WHERE reason = 'truncated'`).Scan(&sources); err != nil {
		t.Fatal(err)
	}
	if sources != "public.gallery_photo.image,public.gallery_photo.thumbnail" {
		t.Errorf("truncate recorded for %q, want both watched columns", sources)
	}
	// scan says so, and finds the file.
	out, code := e.cli("scan", "--min-age", "0s")
	if code != 0 || !strings.Contains(out, "could not be named (rows with reason old_values_missing or truncated: 2") || !strings.Contains(out, "tr/1.jpg\t") {
		t.Errorf("scan after the TRUNCATE: exit %d, want 0 noting the records and listing tr/1.jpg:\n%s", code, out)
	}
}

// TestReferenceCheckWaitsForVisibility: a transaction is streamed once its
// commit record is flushed, which with synchronous replication is before
// other sessions can see it. Here the commit waits for a synchronous
// standby that does not exist; the cleaner must not check references (and
// find none) until the transaction is visible. The transaction moves p.jpg
// from one row to another, so deleting it would lose a referenced file.
// Not parallel: it changes synchronous_standby_names for the whole cluster
// (other tests' sessions use synchronous_commit=off and do not wait).
func TestReferenceCheckWaitsForVisibility(t *testing.T) {
	if cluster.External() {
		t.Skip("changes server settings; not done on an external server (CDC_TEST_DATABASE_URL)")
	}
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("vis/p.jpg")
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)

	admin := cluster.URL("postgres")
	pgtest.Exec(t, admin, `ALTER SYSTEM SET synchronous_standby_names = 'nobody_is_here'`)
	pgtest.Exec(t, admin, `SELECT pg_reload_conf()`)
	released := false
	release := func() {
		if !released {
			released = true
			pgtest.Exec(t, admin, `ALTER SYSTEM RESET synchronous_standby_names`)
			pgtest.Exec(t, admin, `SELECT pg_reload_conf()`)
		}
	}
	t.Cleanup(release)

	c := e.conn()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), `SET synchronous_commit = on;
			BEGIN;
			INSERT INTO gallery_photo (id, image) VALUES (1, 'vis/p.jpg');
			UPDATE gallery_photo SET image = '' WHERE id = 1;
			INSERT INTO gallery_photo (id, image) VALUES (2, 'vis/p.jpg');
			COMMIT`)
		done <- err
	}()
	// The commit is flushed and streamed, but waits for the standby.
	time.Sleep(2 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("the commit did not wait for the synchronous standby (err %v)", err)
	default:
	}
	if !e.exists("vis/p.jpg") {
		t.Fatalf("vis/p.jpg was deleted before its transaction was visible; row 2 references it")
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.expect([]string{"vis/p.jpg"}, nil)
}
