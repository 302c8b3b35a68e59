package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// StartOwn starts a throwaway cluster of the caller's own, from the
// binaries Start uses, with extra appended to its configuration: for tests
// that stop, promote or reconfigure a server, which the shared cluster must
// never be. The caller stops it (Stop), which removes it.
func StartOwn(ctx context.Context, extra string) (*Cluster, error) {
	if os.Getenv(EnvDatabaseURL) != "" {
		return nil, &NotInstalledError{Msg: fmt.Sprintf("a test needs a throwaway cluster of its own, which %s (an external server) rules out", EnvDatabaseURL)}
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	return start(ctx, &Cluster{bins: bins, extra: extra, own: true})
}

// Standby makes a physical standby of c and starts it: it creates the
// physical replication slot slot on c, stops c (fast), copies its data
// directory, starts c again, and starts the copy on a port of its own with
// standby.signal, primary_conninfo (with dbname, which slot
// synchronization needs), primary_slot_name, hot_standby_feedback and
// extra. The standby is a cluster of its own (StartOwn).
func (c *Cluster) Standby(ctx context.Context, slot, extra string) (*Cluster, error) {
	if c.external != nil || !c.own {
		return nil, errors.New("a standby is made only of a cluster of the test's own (StartOwn)")
	}
	conn, err := pgx.Connect(ctx, c.adminURL())
	if err != nil {
		return nil, fmt.Errorf("connect to the primary: %w", err)
	}
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1)`, slot)
	conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("create physical slot %s: %w", slot, err)
	}
	s := &Cluster{bins: c.bins, runAs: c.runAs, runuser: c.runuser, version: c.version, own: true}
	s.extra = fmt.Sprintf(`
# pgtest standby
primary_conninfo = 'host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=standby'
primary_slot_name = '%s'
hot_standby_feedback = on
%s`, c.port, slot, extra)
	if s.dir, err = os.MkdirTemp(tempBase(s.runAs != ""), "pgtest-"); err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	s.dataDir = filepath.Join(s.dir, "data")
	s.logFile = filepath.Join(s.dir, "postgres.log")
	fail := func(err error) (*Cluster, error) {
		s.removeDir()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fail(fmt.Errorf("write owner file: %w", err))
	}
	// A fast stop waits for walsenders' clients to confirm everything
	// sent to them, which a cleaner holding its confirmation never does.
	c.terminateWalsenders()
	if err := c.StopServer("fast"); err != nil {
		return fail(err)
	}
	// cp -a keeps the owner (the postgres user when the tests run as
	// root) and the modes PostgreSQL insists on.
	out, err := exec.CommandContext(ctx, "cp", "-a", c.dataDir, s.dataDir).CombinedOutput()
	if startErr := c.StartServer(); startErr != nil {
		return fail(startErr)
	}
	if err != nil {
		return fail(fmt.Errorf("copy the primary's data directory: %w\n%s", err, out))
	}
	if err := s.chown(s.dir); err != nil {
		return fail(err)
	}
	signal := filepath.Join(s.dataDir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return fail(fmt.Errorf("write standby.signal: %w", err))
	}
	if err := s.chown(signal); err != nil {
		return fail(err)
	}
	conf := filepath.Join(s.dataDir, "postgresql.conf")
	base, err := os.ReadFile(conf)
	if err != nil {
		return fail(fmt.Errorf("read postgresql.conf: %w", err))
	}
	if s.port, err = freePort(); err != nil {
		return fail(err)
	}
	// The copy's configuration ends with the primary's block; this one,
	// after it, wins.
	if err := os.WriteFile(conf, append(base, s.config()...), 0o600); err != nil {
		return fail(fmt.Errorf("write postgresql.conf: %w", err))
	}
	if err := s.StartServer(); err != nil {
		return fail(err)
	}
	return s, nil
}

// chown gives path to the user the server runs as, if any.
func (c *Cluster) chown(path string) error {
	if c.runAs == "" {
		return nil
	}
	u, err := user.Lookup(c.runAs)
	if err != nil {
		return fmt.Errorf("look up user %s: %w", c.runAs, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, c.runAs, err)
	}
	return nil
}

// Promote promotes a standby (pg_ctl promote, waiting until it is done).
func (c *Cluster) Promote(ctx context.Context) error {
	out, err := c.command(ctx, c.bins.pgCtl, "promote", "-D", c.dataDir, "-w", "-t", "60").CombinedOutput()
	if err != nil {
		return fmt.Errorf("run pg_ctl promote: %w\n%s\nserver log:\n%s", err, out, c.logTail(20))
	}
	return nil
}

// AdminURL is the URL of the cluster's postgres database, as the
// superuser.
func (c *Cluster) AdminURL() string { return c.adminURL() }
