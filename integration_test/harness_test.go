package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds cmd/cdc-cleaner once per test run.
func binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cdc-cleaner-bin-")
		if err != nil {
			binErr = err
			return
		}
		// Searchable by others: some tests run the cleaner as nobody.
		if err := os.Chmod(dir, 0o755); err != nil {
			binErr = err
			return
		}
		binPath, binErr = pgtest.BuildBinary(dir)
	})
	if binErr != nil {
		t.Fatalf("build cdc-cleaner: %v", binErr)
	}
	return binPath
}

// env is one scenario: its own database, slot, publication, storage root
// and configuration file.
type env struct {
	t       *testing.T
	db      string
	url     string
	slot    string
	pub     string // publication name
	dir     string // holds root/, outside/ and the config
	root    string // the local storage root
	outside string // a directory beside the root that must never be touched
	cfgPath string
	// env is added to the environment of every cdc-cleaner process (the
	// AWS_* variables of an S3 test server).
	env []string
	// asNobody runs `cdc-cleaner run` as the nobody user (when the tests
	// run as root, who ignores directory permissions).
	asNobody bool
}

type envOptions struct {
	schema  string // SQL run before setup
	watch   string // YAML of the watch: (and protect:) sections; "media" is the local storage
	extra   string // more YAML (top level)
	noSetup bool
	// urlParams is appended to the configuration URL's query.
	urlParams string
	// cluster is where the test's database is created (default: the
	// shared cluster); configURL, when set, replaces the URL the
	// configuration gives the cleaner ({{db}} stands for the database).
	cluster   *pgtest.Cluster
	configURL string
	// media is more YAML for the "media" storage (indented four spaces),
	// e.g. "    trash: true".
	media string
	// storages replaces the whole storages: section when set.
	storages string
	// httpListen is http.listen; "" (the default) disables the server.
	httpListen string
	// logLevel is log.level (default debug).
	logLevel string
	// otherUser makes the scenario usable by a cleaner running as another
	// user: its directory is searchable by all, the root writable by all,
	// the configuration readable by all, and, when the tests run as root,
	// `run` runs as nobody, so directory permissions bind it.
	otherUser bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	on := cluster
	if o.cluster != nil {
		on = o.cluster
	}
	db, url := on.NewDatabase(t)
	// Publication names are limited to 34 characters (the event trigger
	// setup derives from them must fit PostgreSQL's 63): a hash of the
	// database name keeps them short and unique.
	e := &env{t: t, db: db, url: url, slot: "slot_" + db, pub: fmt.Sprintf("pub_%08x", crc32.ChecksumIEEE([]byte(db))), dir: t.TempDir()}
	if o.otherUser {
		// t.TempDir's parent is private to us.
		dir, err := os.MkdirTemp("", "cdc-cleaner-other-user-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		e.dir = dir
		e.asNobody = os.Geteuid() == 0
	}
	e.root = filepath.Join(e.dir, "root")
	e.outside = filepath.Join(e.dir, "outside")
	for _, d := range []string{e.root, e.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if o.otherUser {
		if err := os.Chmod(e.root, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if o.schema != "" {
		e.exec(o.schema)
	}
	e.cfgPath = filepath.Join(e.dir, "cdc-cleaner.yaml")
	if o.logLevel == "" {
		o.logLevel = "debug"
	}
	// The throwaway cluster trusts local connections and never asks for the
	// password, so one can be put in the URL to check it is never shown.
	cfgURL := strings.Replace(url, "postgres://postgres@", "postgres://postgres:"+testPassword+"@", 1)
	if o.configURL != "" {
		cfgURL = strings.ReplaceAll(o.configURL, "{{db}}", db)
	}
	if o.urlParams != "" {
		sep := "?"
		if strings.Contains(cfgURL, "?") {
			sep = "&"
		}
		cfgURL += sep + o.urlParams
	}
	cfg := fmt.Sprintf(`postgres:
  url: %s
  slot: %s
  publication: %s
  status_interval: 200ms
%s
%s
http:
  listen: "%s"
log:
  level: %s
%s
`, cfgURL, e.slot, e.pub, storagesYAML(e.root, o), o.watch, o.httpListen, o.logLevel, o.extra)
	mode := os.FileMode(0o600)
	if o.otherUser {
		mode = 0o644
	}
	if err := os.WriteFile(e.cfgPath, []byte(cfg), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.cfgPath, mode); err != nil {
		t.Fatal(err)
	}
	if !o.noSetup {
		out, code := e.cli("setup")
		if code != 0 {
			t.Fatalf("setup exited %d:\n%s", code, out)
		}
	}
	return e
}

// cli runs a cdc-cleaner command to completion and returns its combined
// output and exit code.
func (e *env) cli(args ...string) (string, int) {
	e.t.Helper()
	args = append(args, "--config", e.cfgPath)
	cmd := exec.Command(binary(e.t), args...)
	cmd.Env = append(cleanEnv(), e.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		e.t.Fatalf("run cdc-cleaner %v: %v", args, err)
	}
	return string(out), 0
}

// cleanEnv is the test's environment without variables that would change
// the cleaner's configuration.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CDC_CLEANER_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// proc is a running `cdc-cleaner run`.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

// Logs returns what the process wrote so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// start runs `cdc-cleaner run` in the background; its logs are shown when
// the test fails. It is stopped (SIGTERM) at the end of the test.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	args = append([]string{"run", "--config", e.cfgPath}, args...)
	p := &proc{t: e.t, done: make(chan struct{})}
	p.cmd = exec.Command(binary(e.t), args...)
	if e.asNobody {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			e.t.Fatal("setpriv not found (apt-get install util-linux): it runs the cleaner as nobody, since root ignores directory permissions")
		}
		p.cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", binary(e.t)}, args...)...)
	}
	p.cmd.Env = append(cleanEnv(), e.env...)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start cdc-cleaner run: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		p.stop()
		if strings.Contains(p.Logs(), testPassword) {
			e.t.Errorf("cdc-cleaner run logged the database password")
		}
		if e.t.Failed() {
			e.t.Logf("--- cdc-cleaner run (pid %d) logs:\n%s", p.cmd.Process.Pid, p.Logs())
		}
	})
	return p
}

// stop sends SIGTERM and waits; it returns the exit code.
func (p *proc) stop() int {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			p.t.Errorf("cdc-cleaner did not stop within 30s of SIGTERM")
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitLog waits until the logs contain s.
func (p *proc) waitLog(s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Logs(), s) {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("cdc-cleaner exited (%v) before logging %q:\n%s", p.err, s, p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("cdc-cleaner did not log %q within %s:\n%s", s, timeout, p.Logs())
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	pgtest.Exec(e.t, e.url, sql, args...)
}

// conn opens a connection closed at the end of the test.
func (e *env) conn() *pgx.Conn {
	e.t.Helper()
	c, err := pgx.Connect(context.Background(), e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// put creates files under the root.
func (e *env) put(paths ...string) {
	e.t.Helper()
	for _, p := range paths {
		full := filepath.Join(e.root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("content of "+p), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(e.root, p))
	return err == nil
}

// settle waits until the cleaner confirmed everything committed so far.
func (e *env) settle() {
	e.t.Helper()
	pgtest.WaitSettled(e.t, e.url, e.slot, 60*time.Second)
}

// expect checks which files exist.
func (e *env) expect(present []string, gone []string) {
	e.t.Helper()
	for _, p := range present {
		if !e.exists(p) {
			e.t.Errorf("%s was deleted; it must be kept", p)
		}
	}
	for _, p := range gone {
		if e.exists(p) {
			e.t.Errorf("%s still exists; it must be deleted", p)
		}
	}
}

// failed returns path => reason from cdc_cleaner.failed_deletions.
func (e *env) failed() map[string]string {
	e.t.Helper()
	rows, err := e.conn().Query(context.Background(), "SELECT path, reason FROM cdc_cleaner.failed_deletions")
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var p, r string
		if err := rows.Scan(&p, &r); err != nil {
			e.t.Fatal(err)
		}
		out[p] = r
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// testPassword is in every configuration URL; no output may show it.
const testPassword = "pw-never-shown"

// photoSchema is a Django-style table with two FileFields.
const photoSchema = `CREATE TABLE gallery_photo (
	id serial PRIMARY KEY,
	title text NOT NULL DEFAULT '',
	image varchar(100) NOT NULL DEFAULT '',
	thumbnail varchar(100) NOT NULL DEFAULT ''
);
CREATE INDEX ON gallery_photo (image);
CREATE INDEX ON gallery_photo (thumbnail);`

const photoWatch = `watch:
  - table: public.gallery_photo
    columns: [image, thumbnail]
    storage: media`

// storagesYAML is the storages: section: one local storage "media" on root
// unless the options replace it.
func storagesYAML(root string, o envOptions) string {
	if o.storages != "" {
		return strings.ReplaceAll(o.storages, "{{root}}", root)
	}
	out := "storages:\n  media:\n    type: local\n    root: " + root
	if o.media != "" {
		out += "\n" + strings.TrimRight(o.media, "\n")
	}
	return out
}

// Column types as inspection describes them, for tests that build a
// reference check directly.
var (
	typeText  = cdccleaner.ColumnType{Kind: cdccleaner.KindText, Base: 25}
	typeArray = cdccleaner.ColumnType{Kind: cdccleaner.KindArray, Base: 1009}
	typeJSONB = cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSONB}
	typeJSON  = cdccleaner.ColumnType{Kind: cdccleaner.KindJSON, Base: cdccleaner.OIDJSON}
)

// jsonPath parses a json_path that a test writes down.
func jsonPath(s string) cdccleaner.JSONPath {
	p, err := cdccleaner.ParseJSONPath(s)
	if err != nil {
		panic(err)
	}
	return p
}
