package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the environment variable that points the tests at an
// existing server instead of a throwaway cluster. The server must run with
// wal_level=logical and the URL's user must be allowed to create databases
// and replication slots.
const EnvDatabaseURL = "CDC_TEST_DATABASE_URL"

// EnvPGBin names the environment variable that picks the PostgreSQL server
// binaries: a directory holding initdb, pg_ctl and postgres, such as the one
// scripts/pg-fetch prints. When it is set those binaries are used and no
// others; when it is unset they are looked for on PATH, then in
// /usr/lib/postgresql/*/bin.
const EnvPGBin = "CDC_TEST_PG_BIN"

// BinaryPackage is the package BuildBinary builds.
const BinaryPackage = "github.com/cdc-cleaner/cdc-cleaner/cmd/cdc-cleaner"

// BarrierPrefix is the prefix of the logical message WaitSettled writes.
const BarrierPrefix = "cdc_cleaner_test_barrier"

const (
	startTimeout = 30 * time.Second // cap on waiting for the server to accept connections
	opTimeout    = time.Minute      // cap on one helper's round trip to the server
	systemUser   = "postgres"       // OS user that owns the cluster when the tests run as root
	pgLibDir     = "/usr/lib/postgresql"
)

// NotInstalledError reports that something the integration tests need is
// missing from the machine. Its message says what to install.
type NotInstalledError struct {
	Msg string
}

func (e *NotInstalledError) Error() string { return e.Msg }

// IsNotInstalled reports whether err says that something the tests need is
// missing from the machine, as opposed to being present and failing.
func IsNotInstalled(err error) bool {
	var e *NotInstalledError
	return errors.As(err, &e)
}

var errNoBinaries = &NotInstalledError{Msg: "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in " +
	pgLibDir + "/*/bin; install them with: apt-get install -y postgresql"}

// Cluster is a PostgreSQL server the tests may use as they like: either a
// throwaway cluster this package started, or the external server named by
// CDC_TEST_DATABASE_URL. Its methods are safe for concurrent use, except
// that Restart, StopServer and StartServer must not race with each other.
type Cluster struct {
	version     int
	versionName string // server_version, such as "17.10" or "15.14 (Debian 15.14-0+deb12u1)"

	// Set for an external server only.
	external *url.URL

	// Set for a throwaway cluster only.
	bins    binaries
	runAs   string // OS user to run initdb and pg_ctl as, via runuser; "" runs them as ourselves
	runuser string // path of runuser when runAs is set
	dir     string // temporary directory: socket, log, data directory
	dataDir string
	logFile string
	port    int
	// extra is appended to the configuration (StartOwn, Standby).
	extra string
	// own: a cluster of one test's own (StartOwn, Standby), removed whole
	// when it stops, so its databases need no cleanup of their own.
	own bool

	stopOnce sync.Once
	stopErr  error
}

type binaries struct {
	initdb, pgCtl, postgres string
}

// Start starts a throwaway cluster, or connects to the server named by
// CDC_TEST_DATABASE_URL when it is set. When the PostgreSQL server binaries,
// runuser (as root) or the postgres OS user (as root) are missing it returns
// an error for which IsNotInstalled is true.
func Start(ctx context.Context) (*Cluster, error) {
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		return startExternal(ctx, raw)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	return start(ctx, &Cluster{bins: bins})
}

// start sets up and starts c, whose binaries (and extra configuration)
// are set.
func start(ctx context.Context, c *Cluster) (*Cluster, error) {
	var err error
	if os.Geteuid() == 0 {
		if d := unsearchable(filepath.Dir(c.bins.postgres)); d != "" && os.Getenv(EnvPGBin) != "" {
			return nil, fmt.Errorf("%s=%s: the postgres OS user, which runs the server when the tests run as root, cannot reach it: other users may not search %s; run chmod o+x %s, or put the binaries elsewhere (scripts/pg-fetch makes its cache reachable)", EnvPGBin, os.Getenv(EnvPGBin), d, d)
		}
		// initdb and postgres refuse to run as root.
		c.runuser, err = exec.LookPath("runuser")
		if err != nil {
			return nil, &NotInstalledError{Msg: "runuser not found on PATH (needed to run PostgreSQL as the postgres user when the tests run as root); install it with: apt-get install -y util-linux"}
		}
		if _, err := user.Lookup(systemUser); err != nil {
			return nil, &NotInstalledError{Msg: fmt.Sprintf("OS user %q not found (needed to run PostgreSQL when the tests run as root); create it with: useradd --system --user-group --no-create-home postgres (installing the postgresql package also creates it)", systemUser)}
		}
		c.runAs = systemUser
	}
	base := tempBase(c.runAs != "")
	c.reapStale(ctx, base)
	if c.dir, err = os.MkdirTemp(base, "pgtest-"); err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	c.dataDir = filepath.Join(c.dir, "data")
	c.logFile = filepath.Join(c.dir, "postgres.log")
	if err := c.setUp(ctx); err != nil {
		c.removeDir()
		return nil, err
	}
	return c, nil
}

func startExternal(ctx context.Context, raw string) (*Cluster, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s must be a postgres:// URL", EnvDatabaseURL)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/postgres"
	}
	c := &Cluster{external: u}
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		return nil, fmt.Errorf("connect to %s server: %w", EnvDatabaseURL, err)
	}
	defer conn.Close(context.Background())
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return nil, fmt.Errorf("query wal_level of %s server: %w", EnvDatabaseURL, err)
	}
	if walLevel != "logical" {
		return nil, fmt.Errorf("%s server runs with wal_level=%s; the integration tests need wal_level=logical", EnvDatabaseURL, walLevel)
	}
	if c.version, c.versionName, err = serverVersion(ctx, conn); err != nil {
		return nil, err
	}
	return c, nil
}

// findBinaries takes the directory named by CDC_TEST_PG_BIN when it is set;
// otherwise it looks on PATH first, then in the highest version under
// /usr/lib/postgresql, where Debian installs the server without putting it
// on PATH.
func findBinaries() (binaries, error) {
	if dir := os.Getenv(EnvPGBin); dir != "" {
		return binariesIn(dir)
	}
	var b binaries
	var err1, err2, err3 error
	b.initdb, err1 = exec.LookPath("initdb")
	b.pgCtl, err2 = exec.LookPath("pg_ctl")
	b.postgres, err3 = exec.LookPath("postgres")
	if err1 == nil && err2 == nil && err3 == nil {
		return b, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(pgLibDir, "*", "bin"))
	sort.Slice(dirs, func(i, j int) bool { return dirVersion(dirs[i]) > dirVersion(dirs[j]) })
	for _, dir := range dirs {
		b := binaries{
			initdb:   filepath.Join(dir, "initdb"),
			pgCtl:    filepath.Join(dir, "pg_ctl"),
			postgres: filepath.Join(dir, "postgres"),
		}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) && isExecutable(b.postgres) {
			return b, nil
		}
	}
	return binaries{}, errNoBinaries
}

// binariesIn returns the server binaries in dir, the directory named by
// CDC_TEST_PG_BIN. It never falls back to other binaries: a test run that
// asked for one PostgreSQL version must not pass on another. A wrong
// directory is an error, not a NotInstalledError, so that the tests fail
// rather than skip even when CI is unset.
func binariesIn(dir string) (binaries, error) {
	if !filepath.IsAbs(dir) {
		// go test runs each test binary in its package's directory, so a
		// relative path would not mean what it meant to the caller.
		return binaries{}, fmt.Errorf("%s=%s must be an absolute path (go test runs the tests in the package directory)", EnvPGBin, dir)
	}
	b := binaries{
		initdb:   filepath.Join(dir, "initdb"),
		pgCtl:    filepath.Join(dir, "pg_ctl"),
		postgres: filepath.Join(dir, "postgres"),
	}
	var missing []string
	for _, p := range []string{b.initdb, b.pgCtl, b.postgres} {
		if !isExecutable(p) {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return binaries{}, fmt.Errorf("%s=%s lacks %s: it must name a directory holding the PostgreSQL server binaries initdb, pg_ctl and postgres; fetch one with scripts/pg-fetch MAJOR, or unset %s to use the machine's PostgreSQL",
			EnvPGBin, dir, strings.Join(missing, ", "), EnvPGBin)
	}
	return b, nil
}

// RaceEnabled reports whether the test binary, and so the cleaner that
// BuildBinary builds, runs with the race detector (several times slower).
func RaceEnabled() bool { return raceEnabled }

// ClientTool returns the path of a PostgreSQL client program, such as
// pg_recvlogical: beside the throwaway cluster's server binaries, else on
// PATH, else in the highest version under /usr/lib/postgresql. The
// directory CDC_TEST_PG_BIN names may hold the server only, as the one
// scripts/pg-fetch prints does; the client then comes from the machine and
// may be of another major version than the server.
func (c *Cluster) ClientTool(name string) (string, error) {
	if c.bins.postgres != "" {
		if p := filepath.Join(filepath.Dir(c.bins.postgres), name); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(pgLibDir, "*", "bin"))
	sort.Slice(dirs, func(i, j int) bool { return dirVersion(dirs[i]) > dirVersion(dirs[j]) })
	for _, dir := range dirs {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", &NotInstalledError{Msg: name + " not found on PATH or in " + pgLibDir + "/*/bin; install it with: apt-get install -y postgresql-client"}
}

// dirVersion turns /usr/lib/postgresql/15/bin into 15, and 9.6 into 9.6.
func dirVersion(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// tempBase returns the directory to create the cluster's directory in. The
// Unix socket lives there too, and its path must stay under the kernel's
// limit of about 107 bytes; when the cluster runs as another user, that user
// must be able to reach the directory.
func tempBase(otherUser bool) string {
	base := os.TempDir()
	if len(base) > 60 || (otherUser && !searchableByOthers(base)) {
		return "/tmp"
	}
	return base
}

func searchableByOthers(dir string) bool { return unsearchable(dir) == "" }

// unsearchable returns the first directory from dir up to / that other users
// may not search (or that does not exist), or "" when there is none.
func unsearchable(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// setUp runs initdb, writes the configuration and starts the server on a
// free port, trying a few ports in case another process takes the one we
// picked before the server binds it.
func (c *Cluster) setUp(ctx context.Context) error {
	if err := os.WriteFile(filepath.Join(c.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	if c.runAs != "" {
		u, err := user.Lookup(c.runAs)
		if err != nil {
			return fmt.Errorf("look up user %s: %w", c.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return fmt.Errorf("chown %s to %s: %w", c.dir, c.runAs, err)
		}
	}
	out, err := c.command(ctx, c.bins.initdb,
		"-D", c.dataDir,
		"-U", "postgres",
		"--auth-local=trust", "--auth-host=trust",
		"--encoding=UTF8", "--locale=C",
		"--no-sync",
	).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run initdb: %w\n%s", err, out)
	}
	base, err := os.ReadFile(filepath.Join(c.dataDir, "postgresql.conf"))
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if c.port, err = freePort(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(c.dataDir, "postgresql.conf"), append(base, c.config()...), 0o600); err != nil {
			return fmt.Errorf("write postgresql.conf: %w", err)
		}
		lastErr = c.StartServer()
		if lastErr == nil {
			break
		}
		if !strings.Contains(c.logTail(20), "could not bind") {
			return lastErr
		}
	}
	if lastErr != nil {
		return lastErr
	}
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		return fmt.Errorf("connect to the new cluster: %w", err)
	}
	defer conn.Close(context.Background())
	c.version, c.versionName, err = serverVersion(ctx, conn)
	return err
}

// config is appended to the postgresql.conf initdb wrote. fsync,
// full_page_writes and synchronous_commit are off for speed: the cluster
// does not have to survive a crash of the machine, only of its processes
// (see StopServer).
func (c *Cluster) config() string {
	return fmt.Sprintf(`
# pgtest
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = logical
max_replication_slots = 50
max_wal_senders = 50
max_prepared_transactions = 20
max_connections = 200
wal_sender_timeout = '60s'
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_line_prefix = '%%m [%%p] %%q%%u@%%d %%a: '
lc_messages = 'C'
%s`, c.port, c.dir, c.extra)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command prepares one of the PostgreSQL programs to run as the cluster's
// owner, in the cluster's directory (the postgres user may not be allowed
// into ours), without the caller's PG* variables.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if c.runAs != "" {
		args = append([]string{"-u", c.runAs, "--", name}, args...)
		name = c.runuser
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// serverVersion returns server_version_num (170010) and server_version
// ("17.10").
func serverVersion(ctx context.Context, conn *pgx.Conn) (int, string, error) {
	var num, name string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num'), current_setting('server_version')").Scan(&num, &name); err != nil {
		return 0, "", fmt.Errorf("query server_version_num: %w", err)
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", fmt.Errorf("parse server_version_num %q: %w", num, err)
	}
	return v, name, nil
}

// URL returns the URL of database db on the cluster. For an external server
// it is CDC_TEST_DATABASE_URL with the database name replaced.
func (c *Cluster) URL(db string) string {
	if c.external != nil {
		u := *c.external
		u.Path = "/" + db
		u.RawPath = ""
		return u.String()
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(db))
}

// adminURL is where NewDatabase and the cleanups connect: the postgres
// database, or the database named in CDC_TEST_DATABASE_URL.
func (c *Cluster) adminURL() string {
	if c.external != nil {
		return c.external.String()
	}
	return c.URL("postgres")
}

// External reports whether the cluster is the server named by
// CDC_TEST_DATABASE_URL rather than one this package started.
func (c *Cluster) External() bool { return c.external != nil }

// Version returns the server's server_version_num, such as 150004.
func (c *Cluster) Version() int { return c.version }

// VersionName returns the server's server_version, such as "17.10" or
// "15.14 (Debian 15.14-0+deb12u1)".
func (c *Cluster) VersionName() string { return c.versionName }

// LogFile returns the path of the server's log, or "" for an external server.
func (c *Cluster) LogFile() string { return c.logFile }

// Port returns the server's TCP port on 127.0.0.1, or 0 for an external server.
func (c *Cluster) Port() int { return c.port }

// Stop stops the server (pg_ctl stop -m fast) and removes its directory. It
// does nothing for an external server, and nothing the second time.
func (c *Cluster) Stop() error {
	if c.external != nil {
		return nil
	}
	c.stopOnce.Do(func() {
		c.terminateWalsenders()
		if err := c.StopServer("fast"); err != nil {
			c.stopErr = err
			if err := c.StopServer("immediate"); err != nil {
				c.stopErr = errors.Join(c.stopErr, err)
			}
		}
		if err := c.removeDir(); err != nil {
			c.stopErr = errors.Join(c.stopErr, err)
		}
	})
	return c.stopErr
}

// terminateWalsenders ends the replication connections before a teardown:
// a fast shutdown waits for every walsender's client to confirm all WAL sent
// to it, which a client holding back its confirmation never does.
func (c *Cluster) terminateWalsenders() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		return // the stop reports what is wrong
	}
	defer conn.Close(context.Background())
	_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
}

func (c *Cluster) removeDir() error {
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove %s: %w", c.dir, err)
	}
	return nil
}

// Restart stops the server with pg_ctl's shutdown mode ("smart", "fast" or
// "immediate") and starts it again on the same port, so every URL keeps
// working once it returns. "immediate" makes the server processes crash:
// the server runs crash recovery when it starts again, and clients, walsenders
// included, lose their connections without a goodbye. "smart" and "fast" wait
// until every walsender's client has confirmed all WAL sent to it, so with a
// connected consumer that holds back its confirmation they take up to
// wal_sender_timeout (60s) and may then fail.
func (c *Cluster) Restart(mode string) error {
	if err := c.StopServer(mode); err != nil {
		return err
	}
	return c.StartServer()
}

// StopServer stops the server with pg_ctl's shutdown mode ("smart", "fast"
// or "immediate") and leaves it down until StartServer, for tests of what
// clients do while the server is gone.
//
// Before an immediate stop it flushes the WAL: with synchronous_commit=off a
// transaction that committed in the last moments before the crash would
// otherwise be lost, and a test could not tell what the database holds. The
// crash is of the server's processes, not of the machine.
func (c *Cluster) StopServer(mode string) error {
	if c.external != nil {
		return fmt.Errorf("cannot stop an external server (%s is set)", EnvDatabaseURL)
	}
	switch mode {
	case "smart", "fast", "immediate":
	default:
		return fmt.Errorf("unknown shutdown mode %q: want smart, fast or immediate", mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if mode == "immediate" {
		if err := c.flushWAL(ctx); err != nil {
			return err
		}
	}
	out, err := c.command(ctx, c.bins.pgCtl, "stop", "-D", c.dataDir, "-m", mode, "-w", "-t", "60").CombinedOutput()
	if err != nil {
		return fmt.Errorf("run pg_ctl stop -m %s: %w\n%s\nserver log:\n%s", mode, err, out, c.logTail(20))
	}
	return nil
}

// flushWAL commits a transaction with synchronous_commit=on, which writes
// out the WAL of every transaction that committed before it.
func (c *Cluster) flushWAL(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		return fmt.Errorf("connect to flush WAL: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `BEGIN;
SET LOCAL synchronous_commit = on;
SELECT pg_logical_emit_message(true, 'cdc_cleaner_test_flush', '');
COMMIT;`)
	if err != nil {
		return fmt.Errorf("flush WAL: %w", err)
	}
	return nil
}

// StartServer starts the server stopped by StopServer on the same port and
// waits until it accepts connections.
func (c *Cluster) StartServer() error {
	if c.external != nil {
		return fmt.Errorf("cannot start an external server (%s is set)", EnvDatabaseURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout+5*time.Second)
	defer cancel()
	out, err := c.command(ctx, c.bins.pgCtl, "start",
		"-D", c.dataDir,
		"-p", c.bins.postgres,
		"-l", c.logFile,
		"-w", "-t", strconv.Itoa(int(startTimeout/time.Second)),
	).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run pg_ctl start: %w\n%s\nserver log:\n%s", err, out, c.logTail(20))
	}
	return c.waitReady(ctx)
}

// waitReady waits until the server accepts TCP connections; pg_ctl -w
// already waited for the postmaster, so this rarely loops.
func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attempt, c.adminURL())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("wait for the server on port %d to accept connections: %w\nserver log:\n%s", c.port, err, c.logTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail returns the last n lines of the server log, for error messages.
func (c *Cluster) logTail(n int) string {
	f, err := os.Open(c.logFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// reapStale stops and removes clusters left behind by test binaries that
// died without stopping them (a -timeout panic, a SIGKILL): it looks for
// pgtest directories whose owner process no longer exists.
func (c *Cluster) reapStale(ctx context.Context, base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue // not ours, or still being set up
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		stale := &Cluster{bins: c.bins, runAs: c.runAs, runuser: c.runuser, dir: dir, dataDir: filepath.Join(dir, "data")}
		if _, err := os.Stat(filepath.Join(stale.dataDir, "postmaster.pid")); err == nil {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_ = stale.command(ctx, c.bins.pgCtl, "stop", "-D", stale.dataDir, "-m", "immediate", "-w").Run()
			cancel()
		}
		_ = os.RemoveAll(dir)
	}
}

// RunMain is the body of a TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, &cluster)) }
//
// It starts the cluster, stores it in *c, runs the tests, stops the cluster
// and returns the exit code. When the PostgreSQL server binaries are missing
// it prints what to install and returns 0 without running the tests (a SKIP
// message on stderr), unless the environment variable CI is set: then it
// returns 1, as for any other failure to start. When the tests fail it
// prints the end of the server log.
func RunMain(m *testing.M, c **Cluster) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cl, err := Start(ctx)
	cancel()
	if err != nil {
		if IsNotInstalled(err) && os.Getenv("CI") == "" {
			fmt.Fprintf(os.Stderr, "SKIP: integration tests need PostgreSQL: %v\n"+
				"SKIP: (with CI set this is a failure)\n", err)
			return 0
		}
		fmt.Fprintf(os.Stderr, "FAIL: start PostgreSQL for the integration tests: %v\n", err)
		return 1
	}
	*c = cl
	// Says which server the tests ran against; scripts/test-matrix reads it.
	if cl.External() {
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL %s (%s)\n", cl.VersionName(), EnvDatabaseURL)
	} else {
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL %s, server binaries in %s\n", cl.VersionName(), filepath.Dir(cl.bins.postgres))
	}
	stopSignals := stopOnSignal(cl)
	code := m.Run()
	stopSignals()
	if code != 0 && !cl.External() {
		fmt.Fprintf(os.Stderr, "--- last lines of the server log %s:\n%s\n---\n", cl.LogFile(), cl.logTail(60))
	}
	if err := cl.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// stopOnSignal stops the cluster and exits when the test binary is
// interrupted: pg_ctl detaches the server from our process group, so Ctrl-C
// would otherwise leave it running. The returned function ends the watch
// and waits for its goroutine.
func stopOnSignal(c *Cluster) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "pgtest: %v: stopping PostgreSQL\n", sig)
			_ = c.Stop()
			os.Exit(1)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}

var dbCounter atomic.Int64

// NewDatabase creates an empty database for the test and returns its name
// and URL. The name comes from the test's name, the process and a counter,
// so parallel tests, and parallel test binaries sharing an external server,
// never collide. When the test ends, a cleanup terminates the walsenders of
// the database's replication slots, drops the slots, rolls back its prepared
// transactions and drops the database WITH (FORCE); cleanups the test
// registers later (stopping a cleaner it started) run before it.
func (c *Cluster) NewDatabase(t testing.TB) (name, dbURL string) {
	t.Helper()
	name = fmt.Sprintf("t_%s_%d_%d", sanitize(t.Name()), os.Getpid(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		t.Fatalf("connect to create database %s: %v", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if c.own {
			return // removed with the cluster
		}
		if err := c.dropDatabase(name); err != nil {
			t.Errorf("clean up database %s: %v", name, err)
		}
	})
	return name, c.URL(name)
}

// sanitize turns a test name into a piece of an unquoted identifier.
func sanitize(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 32 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (c *Cluster) dropDatabase(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if err := dropSlots(ctx, conn, name); err != nil {
		return err
	}
	if err := c.rollbackPrepared(ctx, conn, name); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	return nil
}

// dropSlots drops the replication slots of database db, terminating the
// walsenders that hold them first. A client that reconnects at once may
// take a slot again between the two, so it loops until none is left.
func dropSlots(ctx context.Context, conn *pgx.Conn, db string) error {
	var lastErr error
	for {
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid)
			FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, db); err != nil {
			return fmt.Errorf("terminate walsenders: %w", err)
		}
		rows, _ := conn.Query(ctx, `SELECT slot_name FROM pg_replication_slots WHERE database = $1`, db)
		slots, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list replication slots: %w", err)
		}
		if len(slots) == 0 {
			return nil
		}
		for _, slot := range slots {
			// Fails while the terminated walsender is still on its way out.
			if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
				lastErr = fmt.Errorf("drop replication slot %s: %w", slot, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop replication slots %v: %w (last error: %v)", slots, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rollbackPrepared rolls back the prepared transactions of database db,
// which would stop DROP DATABASE. ROLLBACK PREPARED must run in that database.
func (c *Cluster) rollbackPrepared(ctx context.Context, conn *pgx.Conn, db string) error {
	rows, _ := conn.Query(ctx, `SELECT gid FROM pg_prepared_xacts WHERE database = $1`, db)
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list prepared transactions: %w", err)
	}
	if len(gids) == 0 {
		return nil
	}
	dbConn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return fmt.Errorf("connect to roll back prepared transactions: %w", err)
	}
	defer dbConn.Close(context.Background())
	for _, gid := range gids {
		if _, err := dbConn.Exec(ctx, "ROLLBACK PREPARED "+quoteLiteral(gid)); err != nil {
			return fmt.Errorf("roll back prepared transaction %q: %w", gid, err)
		}
	}
	return nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func connect(t testing.TB, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", dbURL, err)
	}
	return conn
}

// Exec runs sql on the database at dbURL on a new connection and fails the
// test on error. Without args, sql may hold several statements. Call it from
// the test's goroutine only.
func Exec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn := connect(t, ctx, dbURL)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// QueryString runs a query whose first row's first column is the answer,
// such as "SHOW wal_level" or "SELECT count(*) FROM photo", and returns that
// value in PostgreSQL's text form. It fails the test on error, when there is
// no row, or when the value is NULL. Call it from the test's goroutine only.
func QueryString(t testing.TB, dbURL, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn := connect(t, ctx, dbURL)
	defer conn.Close(context.Background())
	// The simple protocol returns every type as text, as psql shows it.
	var v *string
	args = append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	if v == nil {
		t.Fatalf("query %q: got NULL", sql)
	}
	return *v
}

// QueryLSN runs a query that returns a pg_lsn, such as
// "SELECT pg_current_wal_lsn()", and returns it in PostgreSQL's text form
// ("0/16B3748"). It fails the test on error or NULL.
func QueryLSN(t testing.TB, dbURL, sql string, args ...any) string {
	t.Helper()
	return QueryString(t, dbURL, sql, args...)
}

// SlotConfirmedFlush returns the confirmed_flush_lsn of a logical slot in
// PostgreSQL's text form. It fails the test when the slot does not exist or
// has no confirmed_flush_lsn (a physical slot).
func SlotConfirmedFlush(t testing.TB, dbURL, slot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn := connect(t, ctx, dbURL)
	defer conn.Close(context.Background())
	var lsn *string
	err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("replication slot %s does not exist", slot)
	}
	if err != nil {
		t.Fatalf("query confirmed_flush_lsn of slot %s: %v", slot, err)
	}
	if lsn == nil {
		t.Fatalf("replication slot %s has no confirmed_flush_lsn", slot)
	}
	return *lsn
}

// WaitSettled waits until the consumer of a logical slot, the cleaner under
// test, has settled every transaction that committed before WaitSettled was
// called, and fails the test if that takes longer than timeout.
//
// It writes a barrier into the WAL, a non-transactional logical message, and
// waits until the slot's confirmed_flush_lsn reaches the barrier's LSN. The
// WAL is one ordered log: every transaction that committed before the call
// has its commit record before the barrier. The cleaner confirms an LSN only
// after it has settled every transaction that committed before that LSN (it
// holds its confirmation back to the first transaction still pending), so a
// confirmed_flush_lsn at or past the barrier proves those transactions are
// settled. Polling for the rows' effects instead would race with a cleaner
// that has not even received the transaction yet. Transactions still open
// when the barrier is written are not covered.
//
// The barrier needs no table and no publication: pgoutput sends it only to
// clients that asked for messages, and a cleaner that did not still sees the
// WAL position pass it in the walsender's keepalives.
func WaitSettled(t testing.TB, dbURL, slot string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+opTimeout)
	defer cancel()
	conn := connect(t, ctx, dbURL)
	var target string
	err := conn.QueryRow(ctx, `SELECT pg_logical_emit_message(false, $1, '')::text`, BarrierPrefix).Scan(&target)
	if err != nil {
		conn.Close(context.Background())
		t.Fatalf("write WAL barrier: %v", err)
	}

	deadline := time.Now().Add(timeout)
	var (
		confirmed *string
		active    bool
		activePID *int32
		found     bool
		lastErr   error
	)
	for {
		// Reconnect after an error: the test may have restarted the server.
		if conn == nil {
			conn, lastErr = pgx.Connect(ctx, dbURL)
		}
		if conn != nil {
			var settled *bool
			err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, active, active_pid, confirmed_flush_lsn >= $1::pg_lsn
				FROM pg_replication_slots WHERE slot_name = $2`, target, slot).Scan(&confirmed, &active, &activePID, &settled)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				found, lastErr = false, nil
			case err != nil:
				lastErr = err
				conn.Close(context.Background())
				conn = nil
			default:
				found, lastErr = true, nil
				if settled != nil && *settled {
					conn.Close(context.Background())
					return
				}
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if conn != nil {
		conn.Close(context.Background())
	}
	state := "does not exist"
	if found {
		c, pid := "NULL", "none"
		if confirmed != nil {
			c = *confirmed
		}
		if activePID != nil {
			pid = strconv.Itoa(int(*activePID))
		}
		state = fmt.Sprintf("confirmed_flush_lsn %s, active %t (pid %s)", c, active, pid)
	}
	if lastErr != nil {
		state += fmt.Sprintf("; last query error: %v", lastErr)
	}
	t.Fatalf("slot %s did not settle within %v: barrier at %s; slot %s", slot, timeout, target, state)
}

var (
	buildMu sync.Mutex
	builds  = map[string]buildResult{}
)

type buildResult struct {
	path string
	err  error
}

// BuildBinary builds the cdc-cleaner command into dir/cdc-cleaner and
// returns its path. It builds once per directory and process: later calls
// return the first result, so call it from TestMain or share the directory.
// When the test binary was built with -race the command is too, so a data
// race in it ends it with exit status 66 and a report on stderr.
func BuildBinary(dir string) (path string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if r, ok := builds[abs]; ok {
		return r.path, r.err
	}
	r := build(abs)
	builds[abs] = r
	return r.path, r.err
}

func build(dir string) buildResult {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if isExecutable("/usr/local/go/bin/go") {
			goBin = "/usr/local/go/bin/go"
		} else {
			return buildResult{err: &NotInstalledError{Msg: "go not found on PATH or in /usr/local/go/bin; install Go (https://go.dev/dl/)"}}
		}
	}
	path := filepath.Join(dir, "cdc-cleaner")
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", path, BinaryPackage)
	out, err := exec.Command(goBin, args...).CombinedOutput()
	if err != nil {
		return buildResult{err: fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)}
	}
	return buildResult{path: path}
}
