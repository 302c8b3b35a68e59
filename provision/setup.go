package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
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
	// AdoptSlot records an existing pgoutput slot of the configured name
	// in cdc_cleaner.slots as the cleaner's own, instead of refusing it:
	// for a slot an earlier version of setup created, before setup kept
	// that record. Never for a slot another consumer reads.
	AdoptSlot bool
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
//
// Setup never changes what it did not create: the publication is altered
// only when it carries setup's mark (PublicationMark) or was made by an
// earlier version of setup, and the slot is used only when
// cdc_cleaner.slots records it; otherwise the statement fails, saying what
// to rename.
func SetupSQL(cfg *config.Config, serverVersion int, opts SetupOptions) []Statement {
	var stmts []Statement
	stmts = append(stmts, Statement{
		Comment: "cdc-cleaner's own schema, the failed_deletions and journal tables (migrations/0001_cdc_cleaner_schema.sql)",
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
END`, cdccleaner.QuoteLiteral(t))),
		})
	}
	// The trigger before the publication: when setup cannot install it
	// and the publication would make the application's DML on future
	// partitions fail, it refuses before publishing anything.
	stmts = append(stmts, eventTriggerSQL(cfg))
	stmts = append(stmts, publicationSQL(cfg, tables, serverVersion))
	stmts = append(stmts, unusedTriggerSQL(cfg))
	if opts.Role != "" {
		stmts = append(stmts, RoleSQL(cfg, opts.Role)...)
	}
	stmts = append(stmts, slotSQL(cfg, opts.AdoptSlot))
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
//   - INSERT, SELECT and DELETE on cdc_cleaner.journal: run journals
//     every removal and reads the journal back for each new reference,
//     prunes it with the trash, and history and status read it. Its id is
//     an identity column, which takes numbers from its sequence without
//     USAGE on it, so no sequence grant;
//   - SELECT on cdc_cleaner.slots, where run checks that the slot is the
//     cleaner's own before it streams;
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
	lit := cdccleaner.QuoteLiteral(role)
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
		Comment: "run journals removals and restores and reads the journal back (INSERT, SELECT), prunes it with the trash (DELETE); history and status read it; its identity column needs no sequence grant",
		SQL:     fmt.Sprintf("GRANT SELECT, INSERT, DELETE ON TABLE cdc_cleaner.journal TO %s", who),
	}, Statement{
		Comment: "run streams only from a slot that cdc_cleaner.slots records as the cleaner's own",
		SQL:     fmt.Sprintf("GRANT SELECT ON TABLE cdc_cleaner.slots TO %s", who),
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
			if errors.As(err, &pgErr) && pgErr.Hint != "" {
				return fmt.Errorf("%s: %w (%s)", st.Comment, err, pgErr.Hint)
			}
			return fmt.Errorf("%s: %w", st.Comment, err)
		}
	}
	return nil
}

// Dropped says what Teardown removed, and what it left because it is not
// the cleaner's.
type Dropped struct {
	Slot         bool
	Publication  bool
	EventTrigger bool
	// KeptSlot and KeptPublication say why the slot or the publication of
	// the configured name was left as it is (it is not the cleaner's); ""
	// when it was not left.
	KeptSlot        string
	KeptPublication string
}

// Kept returns why each object of the configured name that is not the
// cleaner's was left as it is, the slot first.
func (d Dropped) Kept() []string {
	var out []string
	for _, k := range []string{d.KeptSlot, d.KeptPublication} {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

// Teardown drops the slot and the publication, so an uninstalled cleaner
// retains no WAL. It refuses to drop a slot that a running cleaner holds,
// and drops nothing that is not the cleaner's: a slot that
// cdc_cleaner.slots does not record (or with another plugin, or of another
// database) and a publication that setup did not create stay, saying why
// in Dropped.KeptSlot and Dropped.KeptPublication.
func Teardown(ctx context.Context, conn *pgx.Conn, slot, publication string) (Dropped, error) {
	var d Dropped
	var plugin, database string
	var pid *int32
	err := conn.QueryRow(ctx, "SELECT plugin, database, active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&plugin, &database, &pid)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("look up slot %q: %w", slot, err)
	}
	var current string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		return d, fmt.Errorf("read current database: %w", err)
	}
	var hasRegistry bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('cdc_cleaner.slots') IS NOT NULL").Scan(&hasRegistry); err != nil {
		return d, fmt.Errorf("look up cdc_cleaner.slots: %w", err)
	}
	recorded := false
	if hasRegistry {
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM cdc_cleaner.slots WHERE slot_name = $1)", slot).Scan(&recorded); err != nil {
			return d, fmt.Errorf("read cdc_cleaner.slots: %w", err)
		}
	}
	switch {
	case !exists:
	case database != current:
		d.KeptSlot = fmt.Sprintf("slot %q belongs to database %q, not %q: left as it is", slot, database, current)
	case plugin != "pgoutput":
		d.KeptSlot = fmt.Sprintf("slot %q uses output plugin %q, so it belongs to another consumer: left as it is", slot, plugin)
	case !recorded:
		d.KeptSlot = fmt.Sprintf("slot %q was not created by cdc-cleaner setup (cdc_cleaner.slots does not record it), so another consumer may read it: left as it is; if it is this cleaner's, record it with cdc-cleaner setup --adopt-slot and run teardown again", slot)
	case pid != nil:
		return d, fmt.Errorf("slot %q is in use by PID %d: stop every cdc-cleaner run that uses it first", slot, *pid)
	default:
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
			return d, fmt.Errorf("drop slot %q: %w", slot, err)
		}
		d.Slot = true
	}
	if recorded && (d.Slot || !exists) {
		if _, err := conn.Exec(ctx, "DELETE FROM cdc_cleaner.slots WHERE slot_name = $1", slot); err != nil {
			return d, fmt.Errorf("forget slot %q in cdc_cleaner.slots: %w", slot, err)
		}
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

	var owned bool
	err = conn.QueryRow(ctx, "SELECT "+publicationOwnedSQL+" FROM pg_publication p WHERE p.pubname = $1", publication).Scan(&owned)
	pubExists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("look up publication %q: %w", publication, err)
	}
	// The function marks a publication of an earlier setup as the
	// cleaner's: drop it only after the ownership was read.
	if _, err := conn.Exec(ctx, "DROP FUNCTION IF EXISTS cdc_cleaner."+config.QuoteIdentifier("replica_identity_"+publication)+"()"); err != nil {
		return d, fmt.Errorf("drop function cdc_cleaner.replica_identity_%s: %w", publication, err)
	}
	switch {
	case !pubExists:
	case !owned:
		d.KeptPublication = fmt.Sprintf("publication %q was not created by cdc-cleaner setup, so another consumer may use it: left as it is", publication)
	default:
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+config.QuoteIdentifier(publication)); err != nil {
			return d, fmt.Errorf("drop publication %q: %w", publication, err)
		}
		d.Publication = true
	}
	return d, nil
}

// PublicationMark starts the comment setup puts on the publication it
// creates: setup alters, and teardown drops, only a publication that
// carries it.
const PublicationMark = "managed by cdc-cleaner setup"

// publicationOwnedSQL is true for a publication p (a pg_publication row)
// that setup created: it carries PublicationMark, or an earlier version of
// setup, which always installed the function replica_identity_<name>,
// created it.
const publicationOwnedSQL = `(coalesce(obj_description(p.oid, 'pg_publication') LIKE 'managed by cdc-cleaner setup%', false)
    OR to_regprocedure('cdc_cleaner.' || quote_ident('replica_identity_' || p.pubname) || '()') IS NOT NULL)`

// publicationSQL creates the publication, or brings one that setup created
// to exactly the watched tables; it refuses any other publication of that
// name.
func publicationSQL(cfg *config.Config, tables []string, serverVersion int) Statement {
	name := cfg.Postgres.Publication
	pub := config.QuoteIdentifier(name)
	// Inserts too: new references in committed rows are what the journal
	// of removals is compared with (promise 7).
	with := "publish = 'insert, update, delete, truncate'"
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
	mark := PublicationMark + ": it covers exactly the tables cdc-cleaner watches; cdc-cleaner teardown drops it"
	return Statement{
		Comment: "the publication covers exactly the watched tables (setup alters only a publication it created)",
		SQL: doBlock(fmt.Sprintf(`DECLARE owned boolean;
BEGIN
  SELECT %[6]s INTO owned
    FROM pg_publication p WHERE p.pubname = %[1]s;
  IF NOT FOUND THEN
    CREATE PUBLICATION %[2]s FOR TABLE %[3]s WITH (%[4]s);
  ELSIF owned THEN
    ALTER PUBLICATION %[2]s SET TABLE %[3]s;
    ALTER PUBLICATION %[2]s SET (%[4]s);
  ELSE
    RAISE EXCEPTION 'publication %% exists and was not created by cdc-cleaner setup', %[1]s
      USING ERRCODE = 'duplicate_object',
        HINT = 'setup never changes what it did not create, and another consumer may use this publication: set postgres.publication to another name. If it is meant for cdc-cleaner alone, mark it (COMMENT ON PUBLICATION ... IS ''managed by cdc-cleaner setup'') and run setup again: it then covers exactly the watched tables.';
  END IF;
  COMMENT ON PUBLICATION %[2]s IS %[5]s;
END`, cdccleaner.QuoteLiteral(name), pub, list, with, cdccleaner.QuoteLiteral(mark), publicationOwnedSQL)),
	}
}

// triggerFunctionVersion marks the body of the event trigger's function, so
// that check can tell an earlier version (which could make the
// application's DDL fail) from this one.
const triggerFunctionVersion = "cdc-cleaner event trigger function, version 2"

// triggerFunction returns the function the event trigger calls for
// publication pub. It gives REPLICA IDENTITY FULL to the partitions, under
// a published table, of the tables the DDL command touched (a partition
// created with PARTITION OF, or attached with ATTACH PARTITION to a
// published table). It reads catalogs by OID only (a cast of a name to
// regclass, over all of pg_class, fails for a role that may not use a
// schema such as pg_toast), and it never raises: an error is a warning, so
// nothing the cleaner installs can make the application's DDL fail.
func triggerFunction(pub string) string {
	fn := "cdc_cleaner." + config.QuoteIdentifier("replica_identity_"+pub)
	body := fmt.Sprintf(`-- %[2]s: it never makes the DDL that fired it fail
DECLARE r regclass;
BEGIN
  FOR r IN
    SELECT DISTINCT t.relid::regclass
      FROM pg_event_trigger_ddl_commands() d
      CROSS JOIN LATERAL pg_partition_tree(d.objid) t
      JOIN pg_class c ON c.oid = t.relid
     WHERE d.classid = 'pg_catalog.pg_class'::regclass
       AND c.relkind IN ('r', 'p') AND c.relreplident <> 'f'
       AND EXISTS (SELECT 1 FROM pg_partition_ancestors(d.objid) a
                     JOIN pg_publication_rel pr ON pr.prrelid = a.relid
                     JOIN pg_publication p ON p.oid = pr.prpubid
                    WHERE p.pubname = %[1]s)
  LOOP
    BEGIN
      EXECUTE format('ALTER TABLE %%s REPLICA IDENTITY FULL', r);
    EXCEPTION WHEN others THEN
      RAISE WARNING 'cdc-cleaner: could not set REPLICA IDENTITY FULL on partition %%: %%', r, SQLERRM
        USING HINT = 'UPDATE and DELETE of its rows will not carry old file paths, so their files are not cleaned: run ALTER TABLE ... REPLICA IDENTITY FULL as its owner, or cdc-cleaner setup';
    END;
  END LOOP;
EXCEPTION WHEN others THEN
  RAISE WARNING 'cdc-cleaner: the event trigger that gives new partitions REPLICA IDENTITY FULL failed: %%', SQLERRM
    USING HINT = 'the statement itself went through; run cdc-cleaner check';
END`, cdccleaner.QuoteLiteral(pub), triggerFunctionVersion)
	// lock_timeout, for the function's run only: the ALTER TABLE it runs
	// waits at most 5s for its lock (and then warns) inside the
	// application's DDL, rather than as long as that DDL would.
	return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog SET lock_timeout = '5s' AS %s", fn, dollarQuote(body))
}

// watchedPairs lists the watched tables as SQL ('schema', 'name') pairs.
func watchedPairs(cfg *config.Config) string {
	var pairs []string
	seen := map[string]bool{}
	for _, w := range cfg.Watch {
		p := fmt.Sprintf("(%s, %s)", cdccleaner.QuoteLiteral(w.Schema), cdccleaner.QuoteLiteral(w.Name))
		if !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	return strings.Join(pairs, ", ")
}

// partitionedSQL is true when a watched table is partitioned.
func partitionedSQL(cfg *config.Config) string {
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                  WHERE c.relkind = 'p' AND (n.nspname::text, c.relname::text) IN (%s))`, watchedPairs(cfg))
}

// eventTriggerSQL installs the event trigger only when it has work to do:
// a watched table is partitioned (partitions created later need REPLICA
// IDENTITY FULL). It needs a superuser; without one, setup warns, and
// refuses when a partitioned watched table has no primary key: a partition
// created later would then have no replica identity, and the publication
// would make the application's UPDATE and DELETE on it fail. It runs
// before the publication is created, so that a refusal publishes nothing.
func eventTriggerSQL(cfg *config.Config) Statement {
	pub := cfg.Postgres.Publication
	fn := "cdc_cleaner." + config.QuoteIdentifier("replica_identity_"+pub)
	trigger := EventTriggerName(pub)
	return Statement{
		Comment: "when a watched table is partitioned, partitions created later get REPLICA IDENTITY FULL too: an event trigger (needs a superuser; without one, run setup again after creating partitions)",
		SQL: doBlock(fmt.Sprintf(`DECLARE
  keyless text := (SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'p' AND (n.nspname::text, c.relname::text) IN (%[1]s)
                      AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary));
BEGIN
  IF %[5]s THEN
    BEGIN
      EXECUTE %[2]s;
      DROP EVENT TRIGGER IF EXISTS %[3]s;
      CREATE EVENT TRIGGER %[3]s ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
        EXECUTE FUNCTION %[4]s();
    EXCEPTION WHEN insufficient_privilege THEN
      -- A partition created later then has the default replica identity:
      -- its primary key, or none, and then the publication makes the
      -- application's UPDATE and DELETE on it fail.
      IF keyless IS NOT NULL THEN
        RAISE EXCEPTION 'cdc-cleaner: cannot install the event trigger that gives partitions created later REPLICA IDENTITY FULL (it needs a superuser), and partitioned table %% has no primary key: the application''s UPDATE and DELETE on such a partition would fail (it would have no replica identity while the publication publishes them)', keyless
          USING ERRCODE = 'insufficient_privilege',
            HINT = 'run cdc-cleaner setup as a superuser, or add a primary key to the partitioned table first';
      END IF;
      RAISE WARNING 'cdc-cleaner: cannot install the event trigger (it needs a superuser), so partitions created later will not get REPLICA IDENTITY FULL automatically: their UPDATE and DELETE will not carry old file paths (recorded as old_values_missing) until you run cdc-cleaner setup again after creating them';
    END;
  END IF;
END`, watchedPairs(cfg), cdccleaner.QuoteLiteral(triggerFunction(pub)), config.QuoteIdentifier(trigger), fn, partitionedSQL(cfg))),
	}
}

// unusedTriggerSQL removes the event trigger and function an earlier
// setup installed when no watched table is partitioned any more, as far as
// the current user may. It runs after the publication statement, which
// reads the function as the mark of an earlier setup's publication.
func unusedTriggerSQL(cfg *config.Config) Statement {
	pub := cfg.Postgres.Publication
	fn := "cdc_cleaner." + config.QuoteIdentifier("replica_identity_"+pub)
	trigger := EventTriggerName(pub)
	return Statement{
		Comment: "without a partitioned watched table, no event trigger: remove one an earlier setup installed",
		SQL: doBlock(fmt.Sprintf(`BEGIN
  IF NOT %[5]s THEN
    IF EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = %[2]s) THEN
      BEGIN
        DROP EVENT TRIGGER %[1]s;
      EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'cdc-cleaner: the event trigger %% is not needed (no watched table is partitioned), but only a superuser may drop it: DROP EVENT TRIGGER %%', %[2]s, %[2]s;
      END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = %[2]s) THEN
      BEGIN
        DROP FUNCTION IF EXISTS %[3]s();
      EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'cdc-cleaner: the function %% is not needed, but only its owner may drop it', %[4]s;
      END;
    END IF;
  END IF;
END`, config.QuoteIdentifier(trigger), cdccleaner.QuoteLiteral(trigger), fn, cdccleaner.QuoteLiteral(fn), partitionedSQL(cfg))),
	}
}

// slotSQL creates the slot and records it in cdc_cleaner.slots, in one
// statement that writes only after the slot exists (PostgreSQL refuses to
// create a logical slot in a transaction that has written). An existing
// slot is accepted only when that record says setup created it (or, with
// adopt, when it is a pgoutput slot of this database, which it records);
// any other is refused, naming what to rename.
func slotSQL(cfg *config.Config, adopt bool) Statement {
	slot, pub := cdccleaner.QuoteLiteral(cfg.Postgres.Slot), cdccleaner.QuoteLiteral(cfg.Postgres.Publication)
	failover := "false"
	if cfg.Postgres.FailoverSlot {
		failover = "true"
	}
	unrecorded := `RAISE EXCEPTION 'replication slot %% exists and was not created by cdc-cleaner setup', %[1]s
      USING ERRCODE = 'duplicate_object',
        HINT = 'another consumer may read it, and the cleaner would move it past changes that consumer has not read yet: set postgres.slot to another name. If it is this cleaner''s own slot (created by a cdc-cleaner version before the table cdc_cleaner.slots, by a setup that was interrupted, or by hand for it), record it with cdc-cleaner setup --adopt-slot.';`
	if adopt {
		unrecorded = `INSERT INTO cdc_cleaner.slots (slot_name, publication, adopted) VALUES (%[1]s, %[2]s, true);
    RAISE NOTICE 'cdc-cleaner: recorded the existing slot %% as the cleaner''s own (--adopt-slot)', %[1]s;`
	}
	return Statement{
		Comment: SlotComment,
		SQL: doBlock(fmt.Sprintf(`DECLARE s record; is_failover boolean;
BEGIN
  SELECT plugin, database INTO s FROM pg_replication_slots WHERE slot_name = %[1]s;
  IF NOT FOUND THEN
    -- A slot nobody records would retain WAL while everything refuses it:
    -- make sure the record can be written before creating the slot, and
    -- drop the slot again if it cannot.
    IF to_regclass('cdc_cleaner.slots') IS NULL OR NOT has_table_privilege('cdc_cleaner.slots', 'INSERT') THEN
      RAISE EXCEPTION 'cannot record the slot in cdc_cleaner.slots (missing, or not writable by %%), so it is not created', current_user
        USING HINT = 'apply migrations/0001_cdc_cleaner_schema.sql (cdc-cleaner setup does) first';
    END IF;
    IF %[3]s AND current_setting('server_version_num')::int >= 170000 THEN
      -- A failover slot: standbys with sync_replication_slots keep a copy,
      -- and a promoted one streams on where the cleaner was (17+).
      PERFORM pg_create_logical_replication_slot(%[1]s, 'pgoutput', failover => true);
    ELSE
      PERFORM pg_create_logical_replication_slot(%[1]s, 'pgoutput');
    END IF;
    BEGIN
      INSERT INTO cdc_cleaner.slots (slot_name, publication) VALUES (%[1]s, %[2]s)
        ON CONFLICT (slot_name) DO UPDATE SET publication = EXCLUDED.publication, created_at = now(), adopted = false;
    EXCEPTION WHEN others THEN
      PERFORM pg_drop_replication_slot(%[1]s);
      RAISE;
    END;
  ELSIF s.database IS DISTINCT FROM current_database() THEN
    RAISE EXCEPTION 'replication slot %% belongs to database %%, not %%', %[1]s, s.database, current_database()
      USING ERRCODE = 'duplicate_object',
        HINT = 'slot names are shared by every database of the server: set postgres.slot to another name';
  ELSIF s.plugin IS DISTINCT FROM 'pgoutput' THEN
    RAISE EXCEPTION 'replication slot %% uses output plugin %%, not pgoutput: it belongs to another consumer', %[1]s, s.plugin
      USING ERRCODE = 'duplicate_object',
        HINT = 'set postgres.slot to another name';
  ELSIF EXISTS (SELECT 1 FROM cdc_cleaner.slots WHERE slot_name = %[1]s) THEN
    UPDATE cdc_cleaner.slots SET publication = %[2]s WHERE slot_name = %[1]s AND publication IS DISTINCT FROM %[2]s;
    IF %[3]s AND current_setting('server_version_num')::int >= 170000 THEN
      -- The column exists from 17 on: read it only there.
      EXECUTE 'SELECT failover FROM pg_replication_slots WHERE slot_name = $1' INTO is_failover USING %[1]s;
      IF NOT is_failover THEN
        RAISE NOTICE 'cdc-cleaner: replication slot %% is not a failover slot, so a promoted standby will not have it (postgres.failover_slot is on)', %[1]s
          USING HINT = format('make it one over a replication connection while the cleaner is stopped: psql "dbname=%%s replication=database" -c "ALTER_REPLICATION_SLOT %%s (FAILOVER true)" (README: Failover)', current_database(), %[1]s);
      END IF;
    END IF;
  ELSE
    `+unrecorded+`
  END IF;
END`, slot, pub, failover)),
	}
}
