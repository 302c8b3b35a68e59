package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// Severity of a finding.
type Severity int

const (
	OK Severity = iota
	Warning
	Problem
)

func (s Severity) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	}
	return "problem"
}

// Finding is one line of a check report.
type Finding struct {
	Severity Severity
	Field    string // configuration field it concerns, if any: "watch[0].table"
	Message  string
}

func (f Finding) String() string {
	if f.Field != "" {
		return f.Field + ": " + f.Message
	}
	return f.Message
}

// ValueKind is how a column holds paths.
type ValueKind string

const (
	KindText  ValueKind = "text"
	KindArray ValueKind = "array"
	KindJSON  ValueKind = "json"
)

// Column is a watched or protect column as the database describes it.
type Column struct {
	Storage  string
	Schema   string
	Table    string
	Column   string
	Type     string // format_type, e.g. "character varying(100)"
	Kind     ValueKind
	JSONPath string
	Protect  bool
	Indexed  bool
}

// Report is what Inspect found.
type Report struct {
	ServerVersion int
	Role          string // current_user: the role whose privileges were checked
	Findings      []Finding
	Columns       []Column // every column that exists, watched and protect

	missingPrivileges int             // privilege problems found
	schemaReported    map[string]bool // schemas whose missing USAGE is reported
}

// Problems returns the findings that stop the cleaner from running.
func (r *Report) Problems() []Finding { return r.filter(Problem) }

// Warnings returns the findings worth attention that do not stop it.
func (r *Report) Warnings() []Finding { return r.filter(Warning) }

func (r *Report) filter(s Severity) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity == s {
			out = append(out, f)
		}
	}
	return out
}

func (r *Report) add(s Severity, field, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: s, Field: field, Message: fmt.Sprintf(format, args...)})
}

// MissingPrivileges returns how many problems are privileges the current
// role lacks (each names its GRANT; `setup --role` grants them all).
func (r *Report) MissingPrivileges() int { return r.missingPrivileges }

// missingPrivilege adds a problem naming the GRANT that would solve it.
func (r *Report) missingPrivilege(field, format string, args ...any) {
	r.missingPrivileges++
	r.add(Problem, field, format, args...)
}

// who is the current role as an SQL identifier, for the GRANTs findings name.
func (r *Report) who() string { return config.QuoteIdentifier(r.Role) }

// Inspect checks that the database is ready for the configuration: server
// settings, the current role's privileges, watched tables and columns,
// replica identity, publication, slot and the cleaner's own table. Each
// privilege run lacks is a problem naming the GRANT to run. It returns an
// error only when it cannot ask (no connection); everything else is a
// finding.
//
// Inspect reads only what any role may read (pg_catalog, pg_roles,
// pg_replication_slots, pg_publication_tables, pg_partition_tree, the
// has_*_privilege functions), so that it runs as the least-privilege role of
// RoleSQL. It looks the cleaner's and the watched objects up by name in the
// catalogs: a cast to regclass (or to_regclass) fails with "permission
// denied" in a schema the role may not use, where a finding should say so.
func Inspect(ctx context.Context, conn *pgx.Conn, cfg *config.Config) (*Report, error) {
	r := &Report{schemaReported: map[string]bool{}}
	var walLevel, slots, senders, keepSize string
	var isSuper, canReplicate bool
	// Amazon RDS and Aurora give replication through membership in
	// rds_replication, not the REPLICATION attribute.
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
		current_setting('wal_level'), current_setting('max_replication_slots'),
		current_setting('max_wal_senders'), coalesce(current_setting('max_slot_wal_keep_size', true), '-1'),
		current_user::text, rolsuper, rolreplication OR EXISTS (SELECT 1 FROM pg_roles g
			WHERE g.rolname = 'rds_replication' AND pg_has_role(current_user, g.oid, 'MEMBER'))
		FROM pg_roles WHERE rolname = current_user`).Scan(&r.ServerVersion, &walLevel, &slots, &senders, &keepSize, &r.Role, &isSuper, &canReplicate)
	if err != nil {
		return nil, fmt.Errorf("read server settings: %w", err)
	}
	if r.ServerVersion < 130000 {
		r.add(Problem, "", "PostgreSQL %d is too old: cdc-cleaner needs 13 or later (14 or later for logical decoding messages)", r.ServerVersion/10000)
	} else if r.ServerVersion < 140000 {
		r.add(Warning, "", "PostgreSQL %d: logical decoding messages (pg_logical_emit_message with prefix cdc_cleaner) need PostgreSQL 14; such requests are not seen", r.ServerVersion/10000)
	} else {
		r.add(OK, "", "PostgreSQL %d", r.ServerVersion/10000)
	}
	if walLevel != "logical" {
		r.add(Problem, "", "wal_level is %q, must be \"logical\": set wal_level = logical in postgresql.conf and restart PostgreSQL", walLevel)
	} else {
		r.add(OK, "", "wal_level is logical")
	}
	if slots == "0" {
		r.add(Problem, "", "max_replication_slots is 0: set it to at least 1 and restart PostgreSQL")
	}
	if senders == "0" {
		r.add(Problem, "", "max_wal_senders is 0: set it to at least 1 and restart PostgreSQL")
	}
	if keepSize == "-1" {
		r.add(Warning, "", "max_slot_wal_keep_size is unlimited: if the cleaner stops for long, its slot retains WAL until the server's disk is full; consider a limit (the slot is then invalidated instead, and `cdc-cleaner scan` recovers what it missed)")
	}
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err == nil && inRecovery {
		r.add(Problem, "postgres.url", "the server is a standby (in recovery): connect to the primary, where the slot and the application's writes are")
	}
	if !isSuper && !canReplicate {
		r.missingPrivilege("postgres.url", "role %s has neither REPLICATION nor SUPERUSER, so it cannot stream from the slot: ALTER ROLE %s WITH REPLICATION (as a superuser; on Amazon RDS: GRANT rds_replication TO %s)", r.who(), r.who(), r.who())
	}

	watched := map[string]bool{} // quoted schema.table
	inspectEntries(ctx, conn, r, cfg, "watch", cfg.Watch, false, watched)
	inspectEntries(ctx, conn, r, cfg, "protect", cfg.Protect, true, nil)

	inspectPublication(ctx, conn, r, cfg, watched)
	inspectSlot(ctx, conn, r, cfg)

	if err := inspectOwnObjects(ctx, conn, r); err != nil {
		return nil, err
	}
	switch {
	case r.missingPrivileges > 0:
	case isSuper:
		r.add(OK, "postgres.url", "role %s is a superuser; `cdc-cleaner setup --role NAME` creates a role with only the privileges run needs", r.who())
	default:
		r.add(OK, "postgres.url", "role %s has the privileges run needs", r.who())
	}
	return r, nil
}

// ledgerColumns are the columns of cdc_cleaner.failed_deletions that run
// inserts into (package ledger); id and recorded_at take their defaults.
var ledgerColumns = []string{"storage", "path", "reason", "detail", "source", "commit_lsn", "commit_time"}

// inspectOwnObjects checks the cleaner's schema, its failed_deletions table
// with the id sequence, and, when a json column is watched or protected,
// cdc_cleaner.try_jsonb: that they exist and that the current role may use
// them as run does. A try_jsonb an earlier version installed PARALLEL SAFE
// is a problem when a json column calls it, a warning otherwise.
func inspectOwnObjects(ctx context.Context, conn *pgx.Conn, r *Report) error {
	const missingTable = "table cdc_cleaner.failed_deletions does not exist: run cdc-cleaner setup (or apply migrations/)"
	var usage bool
	err := conn.QueryRow(ctx, "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = 'cdc_cleaner'").Scan(&usage)
	if errors.Is(err, pgx.ErrNoRows) {
		r.add(Problem, "", missingTable)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up schema cdc_cleaner: %w", err)
	}
	if !usage {
		r.missingPrivilege("", "role %s may not use schema cdc_cleaner, where run records failed deletions in cdc_cleaner.failed_deletions: GRANT USAGE ON SCHEMA cdc_cleaner TO %s", r.who(), r.who())
	}

	// has_column_privilege counts table-level grants too. nextval needs
	// USAGE or UPDATE on the sequence.
	var canInsert bool
	var seq *string
	var canSeq *bool
	err = conn.QueryRow(ctx, `SELECT (SELECT coalesce(bool_and(has_column_privilege(c.oid, a.attnum, 'INSERT')), false)
			FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname::text = ANY($1::text[]) AND NOT a.attisdropped),
		s.name, s.ok
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN LATERAL (
			SELECT quote_ident(sn.nspname) || '.' || quote_ident(sc.relname) AS name,
				has_sequence_privilege(sc.oid, 'USAGE') OR has_sequence_privilege(sc.oid, 'UPDATE') AS ok
			FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
			JOIN pg_namespace sn ON sn.oid = sc.relnamespace
			WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
				AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')
			ORDER BY d.refobjsubid LIMIT 1) s ON true
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'failed_deletions' AND c.relkind IN ('r', 'p')`, ledgerColumns).
		Scan(&canInsert, &seq, &canSeq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.add(Problem, "", missingTable)
	case err != nil:
		return fmt.Errorf("look up cdc_cleaner.failed_deletions: %w", err)
	default:
		if !canInsert {
			r.missingPrivilege("", "role %s may not INSERT into cdc_cleaner.failed_deletions, where run records what it could not delete: GRANT INSERT ON cdc_cleaner.failed_deletions TO %s", r.who(), r.who())
		}
		if seq != nil && canSeq != nil && !*canSeq {
			r.missingPrivilege("", "role %s may not use sequence %s, which numbers the rows of cdc_cleaner.failed_deletions: GRANT USAGE ON SEQUENCE %s TO %s", r.who(), *seq, *seq, r.who())
		}
	}

	needJSON := false
	for _, c := range r.Columns {
		if c.Type == "json" {
			needJSON = true
		}
	}
	var canExecute bool
	var parallel string
	err = conn.QueryRow(ctx, `SELECT has_function_privilege(p.oid, 'EXECUTE'), p.proparallel::text
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'cdc_cleaner' AND p.proname = 'try_jsonb' AND p.pronargs = 1 AND p.proargtypes[0] = 'json'::regtype`).Scan(&canExecute, &parallel)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if needJSON {
			r.add(Problem, "", "function cdc_cleaner.try_jsonb(json), through which the reference check reads json columns, does not exist: run cdc-cleaner setup (or apply migrations/0001_cdc_cleaner_schema.sql)")
		}
		return nil
	case err != nil:
		return fmt.Errorf("look up function cdc_cleaner.try_jsonb(json): %w", err)
	}
	if parallel != "u" {
		// Installed by an earlier version. Harmless until a json column
		// is watched or protected: only then does a query call it.
		marking := map[string]string{"s": "SAFE", "r": "RESTRICTED"}[parallel]
		msg := "function cdc_cleaner.try_jsonb(json) is PARALLEL %s, but its EXCEPTION block cannot run in parallel mode: once a table is large enough for a parallel plan, every reference check of a json column fails (\"cannot start subtransactions during a parallel operation\") and holds the slot, and scan fails; run cdc-cleaner setup (or apply migrations/0001_cdc_cleaner_schema.sql) to upgrade it to PARALLEL UNSAFE"
		if needJSON {
			r.add(Problem, "", msg, marking)
		} else {
			r.add(Warning, "", msg+" before configuring a json column", marking)
		}
	}
	if needJSON && !canExecute {
		r.missingPrivilege("", "role %s may not execute cdc_cleaner.try_jsonb(json), through which the reference check reads json columns: GRANT EXECUTE ON FUNCTION cdc_cleaner.try_jsonb(json) TO %s", r.who(), r.who())
	}
	return nil
}

func inspectEntries(ctx context.Context, conn *pgx.Conn, r *Report, cfg *config.Config, kind string, entries []*config.Watch, protect bool, watched map[string]bool) {
	for i, w := range entries {
		field := fmt.Sprintf("%s[%d]", kind, i)
		qualified := config.QuoteIdentifier(w.Schema) + "." + config.QuoteIdentifier(w.Name)
		var oid uint32
		var relkind, replident string
		var usage bool
		err := conn.QueryRow(ctx, `SELECT c.oid, c.relkind::text, c.relreplident::text, has_schema_privilege(n.oid, 'USAGE')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, w.Schema, w.Name).Scan(&oid, &relkind, &replident, &usage)
		if errors.Is(err, pgx.ErrNoRows) {
			r.add(Problem, field+".table", "table %s does not exist (names are case-folded unless double-quoted, as in SQL)", w.Schema+"."+w.Name)
			continue
		}
		if err != nil {
			r.add(Problem, field+".table", "look up %s: %v", qualified, err)
			continue
		}
		if relkind != "r" && relkind != "p" {
			r.add(Problem, field+".table", "%s is not a table (relkind %s): only tables and partitioned tables can be watched", qualified, relkind)
			continue
		}
		if !usage && !r.schemaReported[w.Schema] {
			r.schemaReported[w.Schema] = true
			schema := config.QuoteIdentifier(w.Schema)
			r.missingPrivilege(field+".table", "role %s may not use schema %s, where %s is, so the reference check cannot read it: GRANT USAGE ON SCHEMA %s TO %s", r.who(), schema, qualified, schema, r.who())
		}
		if watched != nil {
			watched[qualified] = true
		}
		if !protect {
			inspectDescendants(ctx, conn, r, cfg, field, oid, relkind, qualified)
		}
		identity := identityColumns(ctx, conn, oid, replident)
		identityReported := false
		for j, col := range w.ColNames {
			cfield := fmt.Sprintf("%s.columns[%d]", field, j)
			var typ, generated string
			var typOID uint32
			var category, elemCategory string
			var indexed, canSelect bool
			// has_column_privilege counts a grant on the whole table and
			// one on the column alike.
			err := conn.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod), a.attgenerated::text, a.atttypid,
				t.typcategory::text, coalesce(et.typcategory::text, ''),
				EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND x.indkey[0] = a.attnum),
				has_column_privilege(a.attrelid, a.attnum, 'SELECT')
				FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
				LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
				WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, oid, col).
				Scan(&typ, &generated, &typOID, &category, &elemCategory, &indexed, &canSelect)
			if errors.Is(err, pgx.ErrNoRows) {
				r.add(Problem, cfield, "column %q not found in %s", col, w.Schema+"."+w.Name)
				continue
			}
			if err != nil {
				r.add(Problem, cfield, "look up column %q of %s: %v", col, qualified, err)
				continue
			}
			if !canSelect {
				qcol := config.QuoteIdentifier(col)
				r.missingPrivilege(cfield, "role %s may not read column %s of %s, which the reference check searches: GRANT SELECT (%s) ON %s TO %s", r.who(), qcol, qualified, qcol, qualified, r.who())
			}
			if generated != "" && !protect {
				r.add(Problem, cfield, "column %q of %s is a generated column: pgoutput does not send generated columns, so it cannot be watched (watch the columns it is computed from, or list it under protect)", col, qualified)
				continue
			}
			c := Column{Storage: w.Storage, Schema: w.Schema, Table: w.Name, Column: col, Type: typ, JSONPath: w.JSONPath, Protect: protect, Indexed: indexed}
			switch {
			case typ == "json" || typ == "jsonb":
				c.Kind = KindJSON
			case category == "A" && elemCategory == "S":
				c.Kind = KindArray
			case category == "S":
				c.Kind = KindText
			default:
				r.add(Problem, cfield, "column %q of %s has type %s: file columns must be text, varchar, an array of them, or json/jsonb", col, qualified, typ)
				continue
			}
			if w.JSONPath != "" && c.Kind != KindJSON {
				r.add(Problem, field+".json_path", "json_path is set but column %q of %s is %s, not json or jsonb", col, qualified, typ)
				continue
			}
			r.Columns = append(r.Columns, c)
			if !protect && !identity[col] && !identityReported {
				identityReported = true
				r.add(Problem, field+".table", "%s lacks REPLICA IDENTITY FULL (and column %q is not in its replica identity index), so UPDATE and DELETE would not carry old file paths: run cdc-cleaner setup, or ALTER TABLE %s REPLICA IDENTITY FULL", qualified, col, qualified)
			}
			switch {
			case c.Kind == KindJSON && typ == "json":
				r.add(Warning, cfield, "column %q of %s is json, not jsonb: no index can serve the reference check, which reads every row; ALTER TABLE %s ALTER COLUMN %s TYPE jsonb, then CREATE INDEX ON %s USING gin (%s jsonb_path_ops)", col, qualified, qualified, config.QuoteIdentifier(col), qualified, config.QuoteIdentifier(col))
			case c.Kind == KindJSON && !hasGIN(ctx, conn, oid, col):
				r.add(Warning, cfield, "no GIN index on %s.%q: every reference check scans the table; CREATE INDEX ON %s USING gin (%s jsonb_path_ops)", qualified, col, qualified, config.QuoteIdentifier(col))
			case c.Kind == KindArray && !hasGIN(ctx, conn, oid, col):
				r.add(Warning, cfield, "no GIN index on %s.%q: every reference check scans the table; CREATE INDEX ON %s USING gin (%s)", qualified, col, qualified, config.QuoteIdentifier(col))
			case c.Kind == KindText && !indexed:
				r.add(Warning, cfield, "no index starts with %s.%q: every reference check scans the table; CREATE INDEX ON %s (%s)", qualified, col, qualified, config.QuoteIdentifier(col))
			}
		}
	}
}

// identityColumns returns the columns whose old values UPDATE and DELETE
// carry: all of them for REPLICA IDENTITY FULL, the index's for DEFAULT
// (primary key) and USING INDEX, none for NOTHING.
func identityColumns(ctx context.Context, conn *pgx.Conn, oid uint32, replident string) map[string]bool {
	cols := map[string]bool{}
	var q string
	switch replident {
	case "f":
		q = `SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`
	case "d":
		q = `SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) WHERE x.indrelid = $1 AND x.indisprimary`
	case "i":
		q = `SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) WHERE x.indrelid = $1 AND x.indisreplident`
	default:
		return cols
	}
	rows, err := conn.Query(ctx, q, oid)
	if err != nil {
		return cols
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		cols[n] = true
	}
	return cols
}

func inspectPublication(ctx context.Context, conn *pgx.Conn, r *Report, cfg *config.Config, watched map[string]bool) {
	name := cfg.Postgres.Publication
	var upd, del, trunc bool
	err := conn.QueryRow(ctx, "SELECT pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1", name).Scan(&upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		r.add(Problem, "postgres.publication", "publication %q does not exist: run cdc-cleaner setup", name)
		return
	}
	if err != nil {
		r.add(Problem, "postgres.publication", "look up publication %q: %v", name, err)
		return
	}
	if !upd || !del {
		r.add(Problem, "postgres.publication", "publication %q does not publish both update and delete: run cdc-cleaner setup", name)
	}
	if !trunc {
		r.add(Warning, "postgres.publication", "publication %q does not publish truncate: a TRUNCATE of a watched table would go unnoticed", name)
	}
	rows, err := conn.Query(ctx, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_publication_tables WHERE pubname = $1", name)
	if err != nil {
		r.add(Problem, "postgres.publication", "list tables of publication %q: %v", name, err)
		return
	}
	published, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		r.add(Problem, "postgres.publication", "list tables of publication %q: %v", name, err)
		return
	}
	// quote_ident leaves simple names bare; normalise both sides.
	norm := func(q string) string { return strings.ReplaceAll(q, `"`, "") }
	in := map[string]bool{}
	for _, p := range published {
		in[norm(p)] = true
	}
	var missing []string
	for t := range watched {
		if !in[norm(t)] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		r.add(Problem, "postgres.publication", "publication %q does not cover %s: run cdc-cleaner setup", name, strings.Join(missing, ", "))
	} else {
		r.add(OK, "postgres.publication", "publication %q covers the watched tables", name)
	}
}

func inspectSlot(ctx context.Context, conn *pgx.Conn, r *Report, cfg *config.Config) {
	name := cfg.Postgres.Slot
	var plugin, database string
	var pid *int32
	var retained *int64
	err := conn.QueryRow(ctx, `SELECT plugin, database, active_pid,
		pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&plugin, &database, &pid, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		r.add(Problem, "postgres.slot", "replication slot %q does not exist: run cdc-cleaner setup", name)
		return
	}
	if err != nil {
		r.add(Problem, "postgres.slot", "look up slot %q: %v", name, err)
		return
	}
	var current string
	_ = conn.QueryRow(ctx, "SELECT current_database()").Scan(&current)
	if plugin != "pgoutput" {
		r.add(Problem, "postgres.slot", "slot %q uses plugin %q, not pgoutput: choose another slot name or drop it", name, plugin)
	}
	if database != current {
		r.add(Problem, "postgres.slot", "slot %q belongs to database %q, not %q: choose another slot name", name, database, current)
	}
	msg := fmt.Sprintf("slot %q exists", name)
	if pid != nil {
		msg += fmt.Sprintf(", in use by PID %d", *pid)
	}
	if retained != nil {
		msg += fmt.Sprintf(", retains %d bytes of WAL", *retained)
	}
	r.add(OK, "postgres.slot", "%s", msg)
}

// inspectDescendants checks what lies below a watched table: every partition
// of a partitioned table must have REPLICA IDENTITY FULL (the publication
// publishes their changes), and inheritance children are not watched.
func inspectDescendants(ctx context.Context, conn *pgx.Conn, r *Report, cfg *config.Config, field string, oid uint32, relkind, qualified string) {
	switch relkind {
	case "p":
		var lacking *string
		err := conn.QueryRow(ctx, `SELECT string_agg(t.relid::regclass::text, ', ')
			FROM pg_partition_tree($1) t JOIN pg_class c ON c.oid = t.relid
			WHERE c.relreplident <> 'f' AND c.relkind IN ('r', 'p')`, oid).Scan(&lacking)
		if err != nil {
			r.add(Problem, field+".table", "list partitions of %s: %v", qualified, err)
			return
		}
		if lacking != nil {
			r.add(Problem, field+".table", "partitions of %s lack REPLICA IDENTITY FULL (%s): their UPDATE and DELETE would not carry old file paths (or fail, without a primary key); run cdc-cleaner setup", qualified, *lacking)
		}
		var hasTrigger bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1 AND evtenabled <> 'D')", EventTriggerName(cfg.Postgres.Publication)).Scan(&hasTrigger); err == nil && !hasTrigger {
			r.add(Warning, field+".table", "%s is partitioned and the event trigger %s is missing: partitions created later will lack REPLICA IDENTITY FULL; run cdc-cleaner setup as a superuser, or again after creating partitions", qualified, EventTriggerName(cfg.Postgres.Publication))
		}
	case "r":
		var children *string
		if err := conn.QueryRow(ctx, "SELECT string_agg(inhrelid::regclass::text, ', ') FROM pg_inherits WHERE inhparent = $1", oid).Scan(&children); err == nil && children != nil {
			r.add(Warning, field+".table", "%s has inheritance children (%s): their rows count as references, but changes to them are not watched; add them to watch to clean their files", qualified, *children)
		}
	}
}

// hasGIN reports whether a GIN index covers column col of table oid.
func hasGIN(ctx context.Context, conn *pgx.Conn, oid uint32, col string) bool {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
		JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
		WHERE x.indrelid = $1 AND a.attname = $2 AND am.amname = 'gin')`, oid, col).Scan(&ok)
	return err == nil && ok
}
