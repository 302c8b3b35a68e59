package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, &cluster)) }

func TestServerSettings(t *testing.T) {
	_, url := cluster.NewDatabase(t)
	if got := pgtest.QueryString(t, url, "SHOW wal_level"); got != "logical" {
		t.Errorf("wal_level = %q, want logical", got)
	}
	if v := cluster.Version(); v < 130000 {
		t.Errorf("Version() = %d, want at least 130000 (DROP DATABASE ... WITH (FORCE))", v)
	}
	if cluster.External() {
		return
	}
	// With CDC_TEST_PG_BIN set the cluster must run exactly those binaries.
	if dir := os.Getenv(pgtest.EnvPGBin); dir != "" {
		out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
		if err != nil {
			t.Fatalf("%s/postgres --version: %v", dir, err)
		}
		// "postgres (PostgreSQL) 17.10"; the server says "17.10".
		if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, " "+cluster.VersionName()) {
			t.Errorf("server_version = %q, but %s=%s holds %q", cluster.VersionName(), pgtest.EnvPGBin, dir, got)
		}
	}
	for setting, want := range map[string]string{
		"max_replication_slots":     "50",
		"max_wal_senders":           "50",
		"max_prepared_transactions": "20",
		"max_connections":           "200",
		"listen_addresses":          "127.0.0.1",
		"port":                      strconv.Itoa(cluster.Port()),
		"fsync":                     "off",
	} {
		if got := pgtest.QueryString(t, url, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	re := regexp.MustCompile(`^postgres://postgres@127\.0\.0\.1:\d+/db1\?sslmode=disable$`)
	if got := cluster.URL("db1"); !re.MatchString(got) {
		t.Errorf("URL(db1) = %q, want it to match %s", got, re)
	}
	if fi, err := os.Stat(cluster.LogFile()); err != nil || fi.Size() == 0 {
		t.Errorf("LogFile() %s: missing or empty (err %v)", cluster.LogFile(), err)
	}
}

// TestNewDatabase creates databases in parallel tests, each with a logical
// slot, one of them held by a live walsender, and checks that the cleanups
// dropped the slots and the databases.
func TestNewDatabase(t *testing.T) {
	var (
		mu      sync.Mutex
		names   []string
		repConn []*pgconn.PgConn // closed after the cleanups, so they meet an active slot
	)
	t.Cleanup(func() {
		for _, c := range repConn {
			c.Close(context.Background())
		}
	})
	t.Run("group", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			active bool
		}{
			{name: "idle slot"},
			{name: "active slot", active: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				name, url := cluster.NewDatabase(t)
				if !strings.HasPrefix(url, "postgres") || !strings.Contains(url, "/"+name) {
					t.Fatalf("URL %q does not name database %s", url, name)
				}
				pgtest.Exec(t, url, `CREATE TABLE photo (id int PRIMARY KEY, image text);
					INSERT INTO photo VALUES (1, 'a.jpg');
					CREATE PUBLICATION cdc FOR ALL TABLES`)
				slot := "slot_" + name
				pgtest.Exec(t, url, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
				if lsn := pgtest.SlotConfirmedFlush(t, url, slot); !strings.Contains(lsn, "/") {
					t.Errorf("SlotConfirmedFlush = %q, want an LSN", lsn)
				}
				if tc.active {
					conn := startReplication(t, url, slot)
					mu.Lock()
					repConn = append(repConn, conn)
					mu.Unlock()
					if got := pgtest.QueryString(t, url, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot); got != "t" {
						t.Fatalf("slot %s active = %q, want t", slot, got)
					}
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("database names %q, want two different ones", names)
	}
	admin := cluster.URL("postgres")
	if cluster.External() {
		admin = os.Getenv(pgtest.EnvDatabaseURL)
	}
	for _, name := range names {
		if n := pgtest.QueryString(t, admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, name); n != "0" {
			t.Errorf("database %s still exists after its test's cleanup", name)
		}
		if n := pgtest.QueryString(t, admin, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, name); n != "0" {
			t.Errorf("%s replication slots of database %s still exist after its test's cleanup", n, name)
		}
	}
}

func startReplication(t *testing.T, url, slot string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, url+"&replication=database")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'cdc'"},
	})
	if err != nil {
		conn.Close(context.Background())
		t.Fatalf("start replication on slot %s: %v", slot, err)
	}
	return conn
}

func TestRestartImmediate(t *testing.T) {
	if cluster.External() {
		if err := cluster.Restart("immediate"); err == nil {
			t.Fatal("Restart of an external server succeeded, want an error")
		}
		t.Skip("cannot restart an external server")
	}
	_, url := cluster.NewDatabase(t)
	pgtest.Exec(t, url, `CREATE TABLE photo (id int PRIMARY KEY, image text);
		INSERT INTO photo VALUES (1, 'a.jpg')`)
	if err := cluster.Restart("immediate"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	// synchronous_commit=off must not lose the row: Restart flushed the WAL.
	if n := pgtest.QueryString(t, url, "SELECT count(*) FROM photo"); n != "1" {
		t.Errorf("rows after restart = %s, want 1", n)
	}
	pgtest.Exec(t, url, `INSERT INTO photo VALUES ($1, $2)`, 2, "b.jpg")
	if n := pgtest.QueryString(t, url, "SELECT count(*) FROM photo"); n != "2" {
		t.Errorf("rows = %s, want 2", n)
	}
	log, err := os.ReadFile(cluster.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "automatic recovery in progress") {
		t.Errorf("server log %s shows no crash recovery after an immediate restart", cluster.LogFile())
	}
	if err := cluster.Restart("sideways"); err == nil {
		t.Error("Restart(sideways) succeeded, want an error")
	}
}

func TestWaitSettled(t *testing.T) {
	_, url := cluster.NewDatabase(t)
	pgtest.Exec(t, url, `CREATE TABLE photo (id int PRIMARY KEY, image text)`)

	t.Run("consumer confirms", func(t *testing.T) {
		pgtest.Exec(t, url, `SELECT pg_create_logical_replication_slot('advanced', 'pgoutput')`)
		pgtest.Exec(t, url, `INSERT INTO photo VALUES (1, 'a.jpg')`)
		inserted := pgtest.QueryLSN(t, url, "SELECT pg_current_wal_lsn()")
		// A stand-in for the cleaner: advance the slot as far as the WAL is flushed.
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- advanceUntilStopped(stop, url, "advanced") }()
		pgtest.WaitSettled(t, url, "advanced", 10*time.Second)
		close(stop)
		if err := <-done; err != nil {
			t.Fatalf("advance slot: %v", err)
		}
		confirmed := pgtest.SlotConfirmedFlush(t, url, "advanced")
		if pgtest.QueryString(t, url, "SELECT $1::pg_lsn >= $2::pg_lsn", confirmed, inserted) != "t" {
			t.Errorf("confirmed_flush_lsn %s is before the insert's %s", confirmed, inserted)
		}
	})

	t.Run("nobody confirms", func(t *testing.T) {
		pgtest.Exec(t, url, `SELECT pg_create_logical_replication_slot('idle', 'pgoutput')`)
		pgtest.Exec(t, url, `INSERT INTO photo VALUES (2, 'b.jpg')`)
		msg := fatalMessage(t, func(tb testing.TB) { pgtest.WaitSettled(tb, url, "idle", 300*time.Millisecond) })
		for _, want := range []string{"slot idle did not settle within 300ms", "barrier at", "confirmed_flush_lsn", "active false"} {
			if !strings.Contains(msg, want) {
				t.Errorf("failure message %q does not contain %q", msg, want)
			}
		}
	})

	t.Run("no such slot", func(t *testing.T) {
		msg := fatalMessage(t, func(tb testing.TB) { pgtest.WaitSettled(tb, url, "nope", 100*time.Millisecond) })
		if !strings.Contains(msg, "does not exist") {
			t.Errorf("failure message %q does not say the slot does not exist", msg)
		}
	})
}

// advanceUntilStopped moves the slot's confirmed_flush_lsn up to the current
// WAL position until stop is closed. It stops between statements, never in
// the middle of one: a canceled statement may still run on the server and
// advance the slot after the caller moved on.
func advanceUntilStopped(stop <-chan struct{}, url, slot string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for {
		if _, err := conn.Exec(ctx, `SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())`, slot); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fatalRecorder stands in for the test in a helper that is expected to
// fail: it records the message and ends the helper's goroutine, without
// touching the real test from that goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// fatalMessage runs fn and returns the message it failed with; the test
// fails if fn returns without failing.
func fatalMessage(t *testing.T, fn func(testing.TB)) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	if rec.msg == "" {
		t.Fatal("helper returned without failing")
	}
	return rec.msg
}
