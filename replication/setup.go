package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// SetupOptions adds to what setup does beyond the configuration.
type SetupOptions struct {
	// Role, when set, names the role `run` logs in as: setup creates it if
	// missing and grants it exactly what run and status need (RoleSQL).
	Role string
}

// SlotComment is the comment of the statement that creates the slot, the
// last one of SetupSQL. A migration tool must run that statement outside
// the transaction of the others (see SetupSQL).
const SlotComment = "the logical replication slot (pgoutput) the cleaner streams from; run this statement on its own, outside a transaction that has written"

// SetupSQL returns the statements `setup` runs, in order. Each is idempotent,
// so the script can be printed (setup --print) and applied by hand or by a
// migration tool with the same effect. The slot is created by the last
// statement, on its own: PostgreSQL refuses to create a logical slot in a
// transaction that has written. With opts.Role, RoleSQL comes just before
// it.
func SetupSQL(cfg *config.Config, serverVersion int, opts SetupOptions) []Statement {
	var stmts []Statement
	stmts = append(stmts, Statement{
		Comment: "cdc-cleaner's own schema and the failed_deletions table (migrations/0001_cdc_cleaner_schema.sql)",
		SQL:     strings.TrimSpace(migrations.Schema),
	})
	tables := WatchedTables(cfg)
	for _, t := range tables {
		// A partitioned table's partitions carry their own replica
		// identity, and the publication publishes their changes: without
		// FULL on each, UPDATE and DELETE on a partition lacking a primary
		// key would fail in the application, and the others would not
		// carry old file paths.
		stmts = append(stmts, Statement{
			Comment: fmt.Sprintf("UPDATE and DELETE of %s (and of its partitions) must carry the old file paths", t),
			SQL: doBlock(fmt.Sprintf(`DECLARE r regclass;
BEGIN
  FOR r IN SELECT c.oid FROM pg_class c
           WHERE c.relreplident <> 'f' AND c.relkind IN ('r', 'p')
             AND (c.oid = %[1]s::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree(%[1]s::regclass)))
  LOOP
    EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r);
  END LOOP;
END`, quoteLiteral(t))),
		})
	}
	pubName := cfg.Postgres.Publication
	pub := config.QuoteIdentifier(pubName)
	with := "publish = 'update, delete, truncate'"
	if serverVersion == 0 || serverVersion >= 130000 {
		// Changes to partitions arrive as changes to the watched parent,
		// including partitions created later.
		with += ", publish_via_partition_root = true"
	}
	// ONLY: inheritance children (not partitions) stay out of the
	// publication, so setup never makes their UPDATE and DELETE demand a
	// replica identity. Partitions are published through their root.
	only := make([]string, len(tables))
	for i, t := range tables {
		only[i] = "ONLY " + t
	}
	list := strings.Join(only, ", ")
	stmts = append(stmts, Statement{
		Comment: "the publication covers exactly the watched tables",
		SQL: doBlock(fmt.Sprintf(`BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s) THEN
    CREATE PUBLICATION %s FOR TABLE %s WITH (%s);
  ELSE
    ALTER PUBLICATION %s SET TABLE %s;
    ALTER PUBLICATION %s SET (%s);
  END IF;
END`, quoteLiteral(pubName), pub, list, with, pub, list, pub, with)),
	})
	fn := "cdc_cleaner." + config.QuoteIdentifier("replica_identity_"+pubName)
	trigger := config.QuoteIdentifier(EventTriggerName(pubName))
	stmts = append(stmts, Statement{
		Comment: "partitions created later get REPLICA IDENTITY FULL too: the function an event trigger calls",
		SQL: fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog AS %s`, fn, dollarQuote(fmt.Sprintf(`DECLARE r regclass;
BEGIN
  FOR r IN SELECT t.relid FROM pg_publication_tables pt
           CROSS JOIN LATERAL pg_partition_tree(format('%%I.%%I', pt.schemaname, pt.tablename)::regclass) t
           JOIN pg_class c ON c.oid = t.relid
           WHERE pt.pubname = %s AND c.relreplident <> 'f' AND c.relkind IN ('r', 'p')
  LOOP
    EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r);
  END LOOP;
END`, quoteLiteral(pubName)))),
	})
	stmts = append(stmts, Statement{
		Comment: "the event trigger (superuser only; otherwise run setup again after creating partitions)",
		SQL: doBlock(fmt.Sprintf(`BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    DROP EVENT TRIGGER IF EXISTS %s;
    CREATE EVENT TRIGGER %s ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
      EXECUTE FUNCTION %s();
  ELSE
    RAISE WARNING 'cdc-cleaner: not a superuser, so partitions created later will not get REPLICA IDENTITY FULL automatically; run cdc-cleaner setup again after creating partitions';
  END IF;
END`, trigger, trigger, fn)),
	})
	if opts.Role != "" {
		stmts = append(stmts, RoleSQL(cfg, opts.Role)...)
	}
	stmts = append(stmts, Statement{
		Comment: SlotComment,
		SQL: fmt.Sprintf(`SELECT pg_create_logical_replication_slot(%s, 'pgoutput')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)`,
			quoteLiteral(cfg.Postgres.Slot), quoteLiteral(cfg.Postgres.Slot)),
	})
	return stmts
}

// RoleSQL returns the statements that give role exactly what `run` needs,
// and what `status` reads, idempotently:
//
//   - the role itself, created if missing WITH LOGIN and REPLICATION (on
//     Amazon RDS, membership in rds_replication instead), with no password
//     and no other attribute; an existing role only gains what it lacks;
//   - CONNECT on the current database, when PUBLIC does not already give it;
//   - USAGE on the schemas of the watched and protect tables and on
//     cdc_cleaner;
//   - SELECT on exactly the watched and protect columns, which is all the
//     reference check reads (column-level grants: other columns, which may
//     hold personal data, stay unreadable);
//   - INSERT on cdc_cleaner.failed_deletions and USAGE on its id sequence,
//     where run records what it could not delete, and SELECT on it, which
//     status reads (counts and the newest rows);
//   - EXECUTE on cdc_cleaner.try_jsonb(json), through which the reference
//     check reads json columns.
//
// Nothing else is needed: the slot and the publication belong to no role a
// replication connection must match (a role with REPLICATION may stream
// from any slot of its database), and what Inspect and status read
// (pg_class, pg_replication_slots, pg_publication_tables,
// pg_partition_tree, pg_event_trigger) any role may read. RoleSQL never
// revokes: privileges the role holds beyond these stay.
func RoleSQL(cfg *config.Config, role string) []Statement {
	who := config.QuoteIdentifier(role)
	lit := quoteLiteral(role)
	stmts := []Statement{{
		Comment: fmt.Sprintf("the role cdc-cleaner run logs in as: LOGIN and REPLICATION, nothing else; no password is set here: ALTER ROLE %s PASSWORD '...'", who),
		SQL: doBlock(fmt.Sprintf(`BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %[1]s) THEN
    CREATE ROLE %[2]s WITH LOGIN;
  ELSIF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = %[1]s) THEN
    ALTER ROLE %[2]s WITH LOGIN;
  END IF;
  IF (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = %[1]s) THEN
    NULL;
  ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') THEN
    -- Amazon RDS and Aurora grant replication through this role.
    IF NOT pg_has_role(%[1]s, 'rds_replication', 'MEMBER') THEN
      GRANT rds_replication TO %[2]s;
    END IF;
  ELSE
    ALTER ROLE %[2]s WITH REPLICATION;
  END IF;
END`, lit, who)),
	}, {
		Comment: "connect to this database (PUBLIC usually may already)",
		SQL: doBlock(fmt.Sprintf(`BEGIN
  IF NOT has_database_privilege(%s, current_database(), 'CONNECT') THEN
    EXECUTE format('GRANT CONNECT ON DATABASE %%I TO %%I', current_database(), %s);
  END IF;
END`, lit, lit)),
	}}

	// The tables in configuration order, each with its columns, watch and
	// protect entries for one table merged.
	type table struct {
		name string
		cols []string
	}
	var tables []*table
	byName := map[string]*table{}
	var schemas []string
	seenSchema := map[string]bool{}
	for _, w := range append(append([]*config.Watch{}, cfg.Watch...), cfg.Protect...) {
		if !seenSchema[w.Schema] {
			seenSchema[w.Schema] = true
			schemas = append(schemas, config.QuoteIdentifier(w.Schema))
		}
		q := config.QuoteIdentifier(w.Schema) + "." + config.QuoteIdentifier(w.Name)
		t := byName[q]
		if t == nil {
			t = &table{name: q}
			byName[q] = t
			tables = append(tables, t)
		}
		for _, c := range w.ColNames {
			qc := config.QuoteIdentifier(c)
			if !slices.Contains(t.cols, qc) {
				t.cols = append(t.cols, qc)
			}
		}
	}
	if !seenSchema["cdc_cleaner"] {
		schemas = append(schemas, "cdc_cleaner")
	}
	stmts = append(stmts, Statement{
		Comment: "reach the watched and protect tables and the cleaner's own objects",
		SQL:     fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", strings.Join(schemas, ", "), who),
	})
	for _, t := range tables {
		stmts = append(stmts, Statement{
			Comment: fmt.Sprintf("the reference check reads only these columns of %s", t.name),
			SQL:     fmt.Sprintf("GRANT SELECT (%s) ON TABLE %s TO %s", strings.Join(t.cols, ", "), t.name, who),
		})
	}
	stmts = append(stmts, Statement{
		Comment: "run records what it could not delete (INSERT, and the id sequence); status counts and lists it (SELECT)",
		SQL: fmt.Sprintf(`GRANT SELECT, INSERT ON TABLE cdc_cleaner.failed_deletions TO %[1]s;
GRANT USAGE ON SEQUENCE cdc_cleaner.failed_deletions_id_seq TO %[1]s`, who),
	}, Statement{
		Comment: "the reference check reads json (not jsonb) columns through this function",
		SQL:     fmt.Sprintf("GRANT EXECUTE ON FUNCTION cdc_cleaner.try_jsonb(json) TO %s", who),
	})
	return stmts
}

// EventTriggerName is the name of the event trigger setup installs for a
// publication, as the catalog stores it: PostgreSQL cuts names to 63 bytes
// (publication names are ASCII), so a lookup by the full name of a long
// publication would never find it.
func EventTriggerName(publication string) string {
	name := "cdc_cleaner_replica_identity_" + publication
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// doBlock wraps a PL/pgSQL body in DO with a dollar quote that the body
// cannot end early, whatever identifiers it holds.
func doBlock(body string) string {
	return "DO " + dollarQuote(body)
}

func dollarQuote(body string) string {
	tag := "$cdc$"
	for i := 0; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$cdc%d$", i)
	}
	return tag + "\n" + body + "\n" + tag
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
		// A name in a comment may hold a line break (a quoted identifier):
		// it must not end the comment.
		comment := strings.NewReplacer("\r\n", "\n-- ", "\n", "\n-- ", "\r", "\n-- ").Replace(s.Comment)
		fmt.Fprintf(&b, "-- %s\n%s;\n\n", comment, strings.TrimRight(s.SQL, "; \n"))
	}
	return b.String()
}

// Setup runs SetupSQL on conn. Running it twice changes nothing. progress is
// called before each statement.
func Setup(ctx context.Context, conn *pgx.Conn, cfg *config.Config, opts SetupOptions, progress func(Statement)) error {
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("read server version: %w", err)
	}
	// ALTER TABLE needs a short exclusive lock: give up rather than queue
	// behind a long transaction and block the application's queries.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '10s'"); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	for _, st := range SetupSQL(cfg, version, opts) {
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
	Slot         bool
	Publication  bool
	EventTrigger bool
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
	var hasTrigger bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1)", EventTriggerName(publication)).Scan(&hasTrigger); err != nil {
		return d, fmt.Errorf("look up event trigger: %w", err)
	}
	if hasTrigger {
		if _, err := conn.Exec(ctx, "DROP EVENT TRIGGER IF EXISTS "+config.QuoteIdentifier(EventTriggerName(publication))); err != nil {
			return d, fmt.Errorf("drop event trigger %s (needs a superuser): %w", EventTriggerName(publication), err)
		}
		d.EventTrigger = true
	}
	if _, err := conn.Exec(ctx, "DROP FUNCTION IF EXISTS cdc_cleaner."+config.QuoteIdentifier("replica_identity_"+publication)+"()"); err != nil {
		return d, fmt.Errorf("drop function cdc_cleaner.replica_identity_%s: %w", publication, err)
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
