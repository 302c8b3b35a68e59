package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/migrations"
)

// Statement is one step of setup: SQL and what it is for.
type Statement struct {
	Comment string
	SQL     string
}

// SetupSQL returns the statements `setup` runs, in order. Each is idempotent,
// so the script can be printed (setup --print) and applied by hand or by a
// migration tool with the same effect. The slot is created by the last
// statement, on its own: PostgreSQL refuses to create a logical slot in a
// transaction that has written.
func SetupSQL(cfg *config.Config, serverVersion int) []Statement {
	var stmts []Statement
	stmts = append(stmts, Statement{
		Comment: "cdc-cleaner's own schema and the failed_deletions table (migrations/0001_cdc_cleaner_schema.sql)",
		SQL:     strings.TrimSpace(migrations.Schema),
	})
	tables := WatchedTables(cfg)
	for _, t := range tables {
		stmts = append(stmts, Statement{
			Comment: fmt.Sprintf("UPDATE and DELETE of %s must carry the old file paths", t),
			SQL: fmt.Sprintf(`DO $cdc$ BEGIN
  IF (SELECT relreplident FROM pg_class WHERE oid = %s::regclass) <> 'f' THEN
    ALTER TABLE %s REPLICA IDENTITY FULL;
  END IF;
END $cdc$`, quoteLiteral(t), t),
		})
	}
	pub := config.QuoteIdentifier(cfg.Postgres.Publication)
	with := "publish = 'update, delete, truncate'"
	if serverVersion == 0 || serverVersion >= 130000 {
		// Changes to partitions arrive as changes to the watched parent,
		// including partitions created later.
		with += ", publish_via_partition_root = true"
	}
	list := strings.Join(tables, ", ")
	stmts = append(stmts, Statement{
		Comment: "the publication covers exactly the watched tables",
		SQL: fmt.Sprintf(`DO $cdc$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s) THEN
    CREATE PUBLICATION %s FOR TABLE %s WITH (%s);
  ELSE
    ALTER PUBLICATION %s SET TABLE %s;
    ALTER PUBLICATION %s SET (%s);
  END IF;
END $cdc$`, quoteLiteral(cfg.Postgres.Publication), pub, list, with, pub, list, pub, with),
	})
	stmts = append(stmts, Statement{
		Comment: "the logical replication slot (pgoutput) the cleaner streams from",
		SQL: fmt.Sprintf(`SELECT pg_create_logical_replication_slot(%s, 'pgoutput')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)`,
			quoteLiteral(cfg.Postgres.Slot), quoteLiteral(cfg.Postgres.Slot)),
	})
	return stmts
}

// WatchedTables returns the distinct watched tables, quoted and
// schema-qualified, in configuration order.
func WatchedTables(cfg *config.Config) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range cfg.Watch {
		q := config.QuoteIdentifier(w.Schema) + "." + config.QuoteIdentifier(w.Name)
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	return out
}

// FormatSQL renders statements as a script with comments.
func FormatSQL(stmts []Statement) string {
	var b strings.Builder
	for _, s := range stmts {
		fmt.Fprintf(&b, "-- %s\n%s;\n\n", s.Comment, strings.TrimRight(s.SQL, "; \n"))
	}
	return b.String()
}

// Setup runs SetupSQL on conn. Running it twice changes nothing. progress is
// called before each statement.
func Setup(ctx context.Context, conn *pgx.Conn, cfg *config.Config, progress func(Statement)) error {
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("read server version: %w", err)
	}
	// ALTER TABLE needs a short exclusive lock: give up rather than queue
	// behind a long transaction and block the application's queries.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '10s'"); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	for _, st := range SetupSQL(cfg, version) {
		if progress != nil {
			progress(st)
		}
		if _, err := conn.Exec(ctx, st.SQL); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
				return fmt.Errorf("%s: could not get a lock within 10s (a long transaction holds the table); retry when it is quiet: %w", st.Comment, err)
			}
			return fmt.Errorf("%s: %w", st.Comment, err)
		}
	}
	return nil
}

// Dropped says what Teardown removed.
type Dropped struct {
	Slot        bool
	Publication bool
}

// Teardown drops the slot and the publication, so an uninstalled cleaner
// retains no WAL. It refuses to drop a slot that a running cleaner holds.
func Teardown(ctx context.Context, conn *pgx.Conn, slot, publication string) (Dropped, error) {
	var d Dropped
	var exists bool
	var pid *int32
	err := conn.QueryRow(ctx, "SELECT true, active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&exists, &pid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("look up slot %q: %w", slot, err)
	}
	if exists {
		if pid != nil {
			return d, fmt.Errorf("slot %q is in use by PID %d: stop every cdc-cleaner run that uses it first", slot, *pid)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
			return d, fmt.Errorf("drop slot %q: %w", slot, err)
		}
		d.Slot = true
	}
	tag, err := conn.Exec(ctx, "SELECT 1 FROM pg_publication WHERE pubname = $1", publication)
	if err != nil {
		return d, fmt.Errorf("look up publication %q: %w", publication, err)
	}
	if tag.RowsAffected() > 0 {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+config.QuoteIdentifier(publication)); err != nil {
			return d, fmt.Errorf("drop publication %q: %w", publication, err)
		}
		d.Publication = true
	}
	return d, nil
}
