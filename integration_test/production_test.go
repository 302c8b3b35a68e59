package integration_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

var addrRe = regexp.MustCompile(`"addr":"([0-9.:]+)"`)

// httpAddr waits for the cleaner to say where it serves /metrics.
func (p *proc) httpAddr(t *testing.T) string {
	t.Helper()
	p.waitLog("serving /metrics", 30*time.Second)
	m := addrRe.FindStringSubmatch(p.Logs())
	if m == nil {
		t.Fatalf("no listen address in the logs:\n%s", p.Logs())
	}
	return m[1]
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the sample whose line starts with
// name{labels} (labels in Prometheus' sorted order), or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestMetricsAfterWorkload scrapes /metrics after a known workload and
// compares every counter of the contract.
func TestMetricsAfterWorkload(t *testing.T) {
	t.Parallel()
	// The rows exist before setup creates the slot: "before any event"
	// below must not race the cleaner streaming their INSERTs.
	e := newEnv(t, envOptions{schema: photoSchema + `CREATE TABLE legacy_upload (file text);
		INSERT INTO legacy_upload VALUES ('m/shared.jpg');
		INSERT INTO gallery_photo (id, image) VALUES (1, 'm/1.jpg'), (2, 'm/2.jpg'), (3, 'm/missing.jpg'), (4, 'm/shared.jpg'), (5, '../evil.jpg'), (6, 'm/kept-by-update.jpg');`, watch: photoWatch + `
protect:
  - table: legacy_upload
    columns: [file]
    storage: media`, httpListen: "127.0.0.1:0"})
	e.put("m/1.jpg", "m/2.jpg", "m/shared.jpg")
	p := e.start()
	addr := p.httpAddr(t)
	// Before any event, every labelled counter is there at 0.
	code, body := get(t, "http://"+addr+"/metrics")
	for _, series := range []string{
		`cdc_cleaner_changes_total{op="insert",table="public.gallery_photo"}`,
		`cdc_cleaner_truncates_total{table="public.gallery_photo"}`,
		`cdc_cleaner_deleted_total{storage="media"}`,
		`cdc_cleaner_failed_total{reason="permission_denied",storage="media"}`,
		`cdc_cleaner_failed_total{reason="dangling_purged",storage="media"}`,
		`cdc_cleaner_failed_total{reason="old_values_missing",storage="media"}`,
	} {
		if got := metricValue(body, series); got != 0 {
			t.Errorf("before any event, %s = %v, want 0", series, got)
		}
	}
	e.exec(`DELETE FROM gallery_photo WHERE id IN (1, 2, 3, 4, 5)`) // 5 deletes, 5 candidates
	e.exec(`UPDATE gallery_photo SET title = 'x' WHERE id = 6`)     // 1 update, no candidate
	e.settle()

	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	code, body = get(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	want := map[string]float64{
		`cdc_cleaner_changes_total{op="delete",table="public.gallery_photo"}`: 5,
		`cdc_cleaner_changes_total{op="update",table="public.gallery_photo"}`: 1,
		`cdc_cleaner_candidates_total{storage="media"}`:                       5,
		`cdc_cleaner_deleted_total{storage="media"}`:                          2,
		`cdc_cleaner_absent_total{storage="media"}`:                           1,
		`cdc_cleaner_kept_referenced_total{storage="media"}`:                  1,
		`cdc_cleaner_failed_total{reason="rejected_path",storage="media"}`:    1,
		`cdc_cleaner_delete_latency_seconds_count`:                            2,
		`cdc_cleaner_streaming`:                                               1,
	}
	for series, v := range want {
		if got := metricValue(body, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if v := metricValue(body, "cdc_cleaner_confirmed_lsn"); v <= 0 {
		t.Errorf("cdc_cleaner_confirmed_lsn = %v, want a position", v)
	}
	if v := metricValue(body, "cdc_cleaner_lag_bytes"); v < 0 {
		t.Errorf("cdc_cleaner_lag_bytes missing")
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Errorf("no Go runtime metrics")
	}
}

// TestReadinessFollowsTheDatabase: /readyz is 200 while streaming, 503
// while PostgreSQL is down, 200 again after it recovers; /healthz stays 200.
// Not parallel: it stops the server.
func TestReadinessFollowsTheDatabase(t *testing.T) {
	if cluster.External() {
		t.Skip("cannot stop an external server (CDC_TEST_DATABASE_URL)")
	}
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, httpListen: "127.0.0.1:0"})
	e.put("r/1.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'r/1.jpg')`)
	p := e.start()
	addr := p.httpAddr(t)
	waitStatus := func(path string, want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _ := get(t, "http://"+addr+path)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d, want %d within 30s", path, code, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitStatus("/readyz", 200)
	if err := cluster.StopServer("immediate"); err != nil {
		t.Fatal(err)
	}
	waitStatus("/readyz", 503)
	waitStatus("/healthz", 200)
	if err := cluster.StartServer(); err != nil {
		t.Fatal(err)
	}
	waitStatus("/readyz", 200)
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	e.expect(nil, []string{"r/1.jpg"})
}

// TestStandbyTakesOverAfterKill9: two instances with one config; the
// standby takes over within status_interval plus a few seconds after the
// active one is killed, and changes made meanwhile are not lost; then the
// new active one's connection is terminated and the work still goes on.
func TestStandbyTakesOverAfterKill9(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("sb/before.jpg", "sb/during.jpg", "sb/after.jpg", "sb/kept.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'sb/before.jpg'), (2, 'sb/during.jpg'), (3, 'sb/after.jpg'), (4, 'sb/kept.jpg')`)
	first := e.start()
	first.waitLog(`"streaming"`, 30*time.Second)
	second := e.start()
	second.waitLog("in use by PID", 30*time.Second)
	e.exec(`DELETE FROM gallery_photo WHERE id = 1`)
	e.settle()

	first.kill()
	killed := time.Now()
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`) // while nobody streams
	// status_interval is 200ms here; the standby asks every 2s.
	second.waitLog(`"streaming"`, 10*time.Second)
	t.Logf("standby streaming %s after kill -9", time.Since(killed).Round(10*time.Millisecond))
	e.settle()

	var pid int
	if err := e.conn().QueryRow(context.Background(), `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	e.exec(`SELECT pg_terminate_backend($1)`, pid)
	e.exec(`DELETE FROM gallery_photo WHERE id = 3`)
	e.settle()
	e.expect([]string{"sb/kept.jpg"}, []string{"sb/before.jpg", "sb/during.jpg", "sb/after.jpg"})
}

// TestGracefulShutdownWhileStorageHangs: SIGTERM while every DeleteObjects
// hangs: the cleaner exits 0 within a few seconds, leaves the hanging work
// unacknowledged, and the next run deletes the file. Not parallel: the S3
// test server sets the AWS_* variables of the test process.
func TestGracefulShutdownWhileStorageHangs(t *testing.T) {
	var hang atomic.Bool
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch}, s3test.Options{
		Latency: func(op string) time.Duration {
			if op == s3test.OpDeleteObjects && hang.Load() {
				return time.Minute
			}
			return 0
		},
	})
	srv.RequireFake(t)
	srv.Put(t, prefix+"h/1.jpg", []byte("x"))
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'h/1.jpg')`)
	hang.Store(true)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo`)
	deadline := time.Now().Add(30 * time.Second)
	for srv.Requests(s3test.OpDeleteObjects) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no DeleteObjects request:\n%s", p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := slotConfirmed(t, e)
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM while storage hangs")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(10*time.Millisecond))
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if !srv.Exists(t, prefix+"h/1.jpg") {
		t.Fatalf("the hanging deletion completed")
	}
	if after := slotConfirmed(t, e); after != before {
		// The final status update may only confirm what was settled.
		t.Logf("slot moved from %s to %s at shutdown (unrelated WAL)", before, after)
	}
	hang.Store(false)
	e.start()
	e.settle()
	if srv.Exists(t, prefix+"h/1.jpg") {
		t.Fatalf("h/1.jpg was not deleted by the next run: the abandoned work was acknowledged")
	}
}

func slotConfirmed(t *testing.T, e *env) string {
	t.Helper()
	var lsn string
	if err := e.conn().QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

// TestLagWarning: above postgres.max_lag_warn (here 1 byte, set through the
// environment) the cleaner warns that the slot retains WAL.
func TestLagWarning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.env = append(e.env, "CDC_CLEANER_POSTGRES_MAX_LAG_WARN=1B")
	e.exec(`INSERT INTO gallery_photo (id, image) SELECT i, 'lag/' || i FROM generate_series(1, 1000) i`)
	p := e.start()
	p.waitLog("retains more WAL than postgres.max_lag_warn", 30*time.Second)
}
