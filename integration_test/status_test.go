package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// statusKeys are the keys of status --json that scripts rely on.
var statusKeys = []string{
	"slot", "exists", "plugin", "active", "active_pid", "confirmed_flush_lsn", "restart_lsn", "current_wal_lsn",
	"retained_bytes", "pending_bytes", "wal_status", "safe_wal_size", "publication", "publication_exists",
	"publication_tables", "failed_deletions_table_exists", "failed_deletions", "failed_deletions_24h",
	"recent_failures", "healthy", "problems", "warnings",
}

// statusJSON runs status --json with extra environment variables and
// returns the decoded object, stderr and the exit code. stdout must be
// exactly one JSON object.
func (e *env) statusJSON(extraEnv ...string) (map[string]any, string, int) {
	e.t.Helper()
	cmd := exec.Command(binary(e.t), "status", "--json", "--config", e.cfgPath)
	cmd.Env = append(append(cleanEnv(), e.env...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("run cdc-cleaner status --json: %v", err)
		}
		code = ee.ExitCode()
	}
	if strings.Contains(stdout.String()+stderr.String(), testPassword) {
		e.t.Errorf("status --json printed the password:\n%s\n%s", stdout.String(), stderr.String())
	}
	e.t.Logf("status --json: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	if err := dec.Decode(&m); err != nil {
		e.t.Fatalf("status --json (exit %d): stdout is not JSON: %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
	}
	if dec.More() {
		e.t.Fatalf("status --json printed more than one JSON value:\n%s", stdout.String())
	}
	for _, k := range statusKeys {
		if _, ok := m[k]; !ok {
			e.t.Errorf("status --json has no key %q:\n%s", k, stdout.String())
		}
	}
	return m, stderr.String(), code
}

// status runs status and checks the exit code and that the password is
// never shown.
func (e *env) status(wantCode int) string {
	e.t.Helper()
	out, code := e.cli("status")
	if code != wantCode {
		e.t.Fatalf("status: exit %d, want %d:\n%s", code, wantCode, out)
	}
	if strings.Contains(out, testPassword) {
		e.t.Errorf("status printed the password:\n%s", out)
	}
	return out
}

func wantContains(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, out)
		}
	}
}

// TestStatusLifecycle: before setup the slot is missing (exit 1), after
// setup it exists and is inactive (exit 0), after teardown it is missing
// again.
func TestStatusLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})

	out := e.status(1)
	wantContains(t, "status before setup", out,
		`slot                 "`+e.slot+`" does not exist`,
		"problem: replication slot \""+e.slot+"\" does not exist: run cdc-cleaner setup",
		"table cdc_cleaner.failed_deletions does not exist",
		"postgres://postgres:xxxxx@")
	m, stderr, code := e.statusJSON()
	if code != 1 || m["exists"] != false || m["healthy"] != false || m["failed_deletions_table_exists"] != false || m["failed_deletions"] != nil {
		t.Errorf("status --json before setup: exit %d, %v", code, m)
	}
	wantContains(t, "stderr of status --json before setup", stderr, "does not exist")

	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup: exit %d:\n%s", code, out)
	}
	out = e.status(0)
	wantContains(t, "status after setup", out,
		`slot                 "`+e.slot+`" (plugin pgoutput, database `+e.db+`)`,
		"state                inactive (no cleaner is streaming)",
		"wal_status           reserved",
		`publication          "`+e.pub+`": public.gallery_photo`,
		"failed deletions     none",
		"hint: no cleaner is streaming")
	if strings.Contains(out, "problem:") {
		t.Errorf("status after setup reports a problem:\n%s", out)
	}
	m, _, code = e.statusJSON()
	if code != 0 || m["exists"] != true || m["active"] != false || m["active_pid"] != float64(0) || m["healthy"] != true ||
		m["plugin"] != "pgoutput" || m["failed_deletions"] != float64(0) {
		t.Errorf("status --json after setup: exit %d, %v", code, m)
	}
	if tables, _ := m["publication_tables"].([]any); len(tables) != 1 || tables[0] != "public.gallery_photo" {
		t.Errorf("publication_tables = %v, want [public.gallery_photo]", m["publication_tables"])
	}

	if out, code := e.cli("teardown"); code != 0 {
		t.Fatalf("teardown: exit %d:\n%s", code, out)
	}
	out = e.status(1)
	wantContains(t, "status after teardown", out, "does not exist", "failed deletions     none")
}

// TestStatusWithRunningCleaner: a streaming cleaner shows as active with
// the PID the server reports, its confirmed position is the slot's, and a
// failed deletion shows in the counts and the newest failures.
func TestStatusWithRunningCleaner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("st/1.jpg", "st/2.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'st/1.jpg'), (2, 'st/2.jpg'), (3, '../x')`)
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	e.expect(nil, []string{"st/1.jpg", "st/2.jpg"})
	if got := e.failed()["../x"]; got != "rejected_path" {
		t.Fatalf("failed_deletions[../x] = %q, want rejected_path", got)
	}

	ctx := context.Background()
	c := e.conn()
	var pid int
	var before string
	if err := c.QueryRow(ctx, `SELECT active_pid, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&pid, &before); err != nil {
		t.Fatal(err)
	}
	m, _, code := e.statusJSON()
	var after string
	if err := c.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if code != 0 || m["active"] != true || m["active_pid"] != float64(pid) || m["healthy"] != true {
		t.Errorf("status --json with a running cleaner: exit %d, active %v, active_pid %v (pg_replication_slots says %d)", code, m["active"], m["active_pid"], pid)
	}
	if m["active_application"] != "cdc-cleaner" {
		t.Errorf("active_application = %v, want cdc-cleaner", m["active_application"])
	}
	// The cleaner confirms every status_interval, so the slot may move
	// between the queries: status's position must lie between them.
	confirmed, _ := m["confirmed_flush_lsn"].(string)
	var between bool
	if err := c.QueryRow(ctx, `SELECT $1::pg_lsn BETWEEN $2::pg_lsn AND $3::pg_lsn`, confirmed, before, after).Scan(&between); err != nil || !between {
		t.Errorf("confirmed_flush_lsn %q is not between %s and %s, as pg_replication_slots reported around it (%v)", confirmed, before, after, err)
	}
	// Other tests write WAL to the same cluster meanwhile, and the cleaner
	// follows it with a delay, so "small" has some room.
	pending, _ := m["pending_bytes"].(float64)
	retained, _ := m["retained_bytes"].(float64)
	if pending < 0 || pending > 16<<20 || retained < pending {
		t.Errorf("pending_bytes %v, retained_bytes %v: want 0 <= pending <= 16 MiB, and retained >= pending", m["pending_bytes"], m["retained_bytes"])
	}
	t.Logf("pending_bytes %v, retained_bytes %v", pending, retained)
	if m["failed_deletions"] != float64(1) || m["failed_deletions_24h"] != float64(1) {
		t.Errorf("failed_deletions %v, failed_deletions_24h %v, want 1 and 1", m["failed_deletions"], m["failed_deletions_24h"])
	}
	recent, _ := m["recent_failures"].([]any)
	if len(recent) != 1 {
		t.Fatalf("recent_failures = %v, want one", m["recent_failures"])
	}
	if f, _ := recent[0].(map[string]any); f["path"] != "../x" || f["reason"] != "rejected_path" || f["storage"] != "media" || f["recorded_at"] == "" {
		t.Errorf("recent_failures[0] = %v, want media ../x rejected_path", f)
	}

	out := e.status(0)
	t.Logf("status:\n%s", out)
	wantContains(t, "status with a running cleaner", out,
		"state                active: PID ",
		"failed deletions     1 in total, 1 in the last 24 hours; newest:",
		`  media  "../x"  rejected_path`,
		"hint: 1 deletion failed in the last 24 hours")
	if strings.Contains(out, "inactive") {
		t.Errorf("status says inactive with a running cleaner:\n%s", out)
	}

	// A retained size above postgres.max_lag_warn is a hint, not a failure.
	m, _, code = e.statusJSON("CDC_CLEANER_POSTGRES_MAX_LAG_WARN=1")
	warnings, _ := json.Marshal(m["warnings"])
	if code != 0 || !strings.Contains(string(warnings), "more than postgres.max_lag_warn") {
		t.Errorf("status --json with max_lag_warn 1: exit %d, warnings %s", code, warnings)
	}

	// Stopped: inactive again, still healthy.
	if code := p.stop(); code != 0 {
		t.Errorf("cleaner exit code %d", code)
	}
	// The server process serving it ends a moment after the cleaner.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var active bool
		if err := c.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot still active 10s after the cleaner stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out = e.status(0)
	wantContains(t, "status after the cleaner stopped", out, "inactive (no cleaner is streaming)")
}
