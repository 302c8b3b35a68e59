package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/catalog"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/journal"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
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

// Conflict says that an object the configuration names exists and is not
// the cleaner's: setup refuses to change it and teardown to drop it.
type Conflict int

const (
	NoConflict Conflict = iota
	// ForeignPublication: the publication was not created by setup.
	ForeignPublication
	// ForeignSlot: the slot uses another plugin or belongs to another
	// database; it is never the cleaner's.
	ForeignSlot
	// UnrecordedSlot: a pgoutput slot of this database that
	// cdc_cleaner.slots does not record; setup --adopt-slot records it.
	UnrecordedSlot
)

// Code says what kind of finding a Finding is, for code and tests that
// must tell findings apart (setup deciding what it goes on past, a test
// asserting what check found); the Message is for people and may change.
// Kinds nobody needs to tell apart share CodeGeneral. A check that could
// not run (its query failed) is a finding too, never a silent pass: it
// carries the code of what it checks (CodeReplicaIdentity, CodePublication,
// CodeSlot, CodeStandby...), or CodeUnchecked when that has no code of its
// own, and its message names what could not be checked and the error.
type Code string

const (
	// CodeGeneral: any finding no caller needs to tell apart (server
	// version and settings, a watched table or column that is missing or
	// of the wrong type, index advice, logical decoding messages, values
	// that are not canonical paths, the event trigger).
	CodeGeneral Code = "general"
	// CodeUnchecked: a check with no code of its own could not run; the
	// message says what was not checked and why.
	CodeUnchecked Code = "unchecked"
	// CodeStandby: the server is a standby (or check could not tell).
	CodeStandby Code = "standby"
	// CodeNoReplication: the role has neither REPLICATION nor SUPERUSER,
	// so it cannot stream from the slot (setup --role gives it).
	CodeNoReplication Code = "no_replication"
	// CodeMissingPrivilege: the role lacks a privilege the reference check
	// needs on a watched or protect table: USAGE on its schema, SELECT on
	// a column. The message names the GRANT.
	CodeMissingPrivilege Code = "missing_privilege"
	// CodeReplicaIdentity: a watched table, or a partition of one, lacks
	// REPLICA IDENTITY FULL (and the columns' old values do not arrive
	// otherwise). setup sets it.
	CodeReplicaIdentity Code = "replica_identity"
	// CodeCleanerSchema: the cleaner's own objects in schema cdc_cleaner
	// (the failed_deletions table, its index and sequence, the slots
	// table, the function try_jsonb) are missing, from an earlier version,
	// or not usable by the role. setup creates and upgrades them; setup
	// --role grants them.
	CodeCleanerSchema Code = "cleaner_schema"
	// CodePublication: the publication is missing, does not fit the
	// watched tables, or is not the cleaner's (Conflict says so). setup
	// creates or changes a publication it created.
	CodePublication Code = "publication"
	// CodeSlot: the slot is missing or not the cleaner's (Conflict says
	// which). setup creates it.
	CodeSlot Code = "slot"
	// CodeFailover: the slot would not survive a failover to a standby,
	// or could run ahead of what a standby received (README: Failover).
	CodeFailover Code = "failover"
	// CodeMapping: the sampled values of a watched or protect column do
	// not name files of its storage (promise 8); check makes these.
	CodeMapping Code = "mapping"
)

// Finding is one line of a check report.
type Finding struct {
	Severity Severity
	Code     Code
	Field    string // configuration field it concerns, if any: "watch[0].table"
	Message  string
	Conflict Conflict
	// SetupFixes is set on a problem that running setup fixes.
	SetupFixes bool
}

func (f Finding) String() string {
	if f.Field != "" {
		return f.Field + ": " + f.Message
	}
	return f.Message
}

// Report is what Inspect found.
type Report struct {
	ServerVersion int
	Role          string // current_user: the role whose privileges were checked
	Findings      []Finding
	Columns       []cdccleaner.Column // every column that exists, watched and protect, catalog fields filled

	missingPrivileges int             // privilege problems found
	schemaReported    map[string]bool // schemas whose missing USAGE is reported
}

// Problems returns the findings that stop the cleaner from running.
func (r *Report) Problems() []Finding { return r.filter(Problem) }

// Unfound returns the fields ("watch[0].columns[1]") of the columns of
// configured that Report.Columns lacks. Inspect adds a problem for every
// column it cannot describe, so with no problems this is empty; run checks
// it anyway before it starts, since a watched column the decoder does not
// read loses vanished paths, and a protect column the reference check does
// not search lets files it references be deleted.
func (r *Report) Unfound(configured []cdccleaner.Column) []string {
	found := map[string]bool{}
	for _, c := range r.Columns {
		found[c.Field] = true
	}
	var out []string
	for _, c := range configured {
		if !found[c.Field] {
			out = append(out, c.Field)
		}
	}
	return out
}

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

func (r *Report) add(s Severity, code Code, field, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: s, Code: code, Field: field, Message: fmt.Sprintf(format, args...)})
}

// conflict adds a finding about an object that is not the cleaner's.
func (r *Report) conflict(c Conflict, s Severity, code Code, field, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: s, Code: code, Field: field, Message: fmt.Sprintf(format, args...), Conflict: c})
}

// Conflicts returns the findings about objects that are not the cleaner's.
func (r *Report) Conflicts() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Conflict != NoConflict {
			out = append(out, f)
		}
	}
	return out
}

// MissingPrivileges returns how many problems are privileges the current
// role lacks (each names its GRANT; `setup --role` grants them all).
func (r *Report) MissingPrivileges() int { return r.missingPrivileges }

// missingPrivilege adds a problem naming the GRANT that would solve it.
func (r *Report) missingPrivilege(code Code, field, format string, args ...any) {
	r.missingPrivileges++
	r.add(Problem, code, field, format, args...)
}

// who is the current role as an SQL identifier, for the GRANTs findings name.
func (r *Report) who() string { return config.QuoteIdentifier(r.Role) }

// Querier is what Inspect needs of a connection: a *pgx.Conn, a pool or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Inspect checks that the database is ready for the configuration: server
// settings, the current role's privileges, watched tables and columns,
// replica identity, publication, slot and the cleaner's own table. Each
// privilege run lacks is a problem naming the GRANT to run. It returns an
// error only when it cannot ask: the server settings, or the cleaner's own
// objects, cannot be read. Any other query that fails is a finding that
// names what could not be checked and the error (see Code), never an
// empty answer that passes or fails a check quietly.
//
// Inspect reads only what any role may read (pg_catalog, pg_roles,
// pg_replication_slots, pg_publication_tables, pg_partition_tree, the
// has_*_privilege functions), so that it runs as the least-privilege role of
// RoleSQL. It looks the cleaner's and the watched objects up by name in the
// catalogs: a cast to regclass (or to_regclass) fails with "permission
// denied" in a schema the role may not use, where a finding should say so.
func Inspect(ctx context.Context, conn Querier, cfg *config.Config) (*Report, error) {
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
		r.add(Problem, CodeGeneral, "", "PostgreSQL %d is too old: cdc-cleaner needs 13 or later (14 or later for logical decoding messages)", r.ServerVersion/10000)
	} else {
		r.add(OK, CodeGeneral, "", "PostgreSQL %d", r.ServerVersion/10000)
	}
	inspectMessages(ctx, conn, r, cfg)
	if walLevel != "logical" {
		r.add(Problem, CodeGeneral, "", "wal_level is %q, must be \"logical\": set wal_level = logical in postgresql.conf and restart PostgreSQL", walLevel)
	} else {
		r.add(OK, CodeGeneral, "", "wal_level is logical")
	}
	if slots == "0" {
		r.add(Problem, CodeGeneral, "", "max_replication_slots is 0: set it to at least 1 and restart PostgreSQL")
	}
	if senders == "0" {
		r.add(Problem, CodeGeneral, "", "max_wal_senders is 0: set it to at least 1 and restart PostgreSQL")
	}
	if keepSize == "-1" {
		r.add(Warning, CodeGeneral, "", "max_slot_wal_keep_size is unlimited: if the cleaner stops for long, its slot retains WAL until the server's disk is full; consider a limit (the slot is then invalidated instead, and `cdc-cleaner scan` recovers what it missed)")
	}
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		r.add(Problem, CodeStandby, "postgres.url", "could not tell whether the server is a standby (pg_is_in_recovery): %v", err)
	} else if inRecovery {
		r.add(Problem, CodeStandby, "postgres.url", "the server is a standby (in recovery): connect to the primary, where the slot and the application's writes are")
	}
	if !isSuper && !canReplicate {
		r.missingPrivilege(CodeNoReplication, "postgres.url", "role %s has neither REPLICATION nor SUPERUSER, so it cannot stream from the slot: ALTER ROLE %s WITH REPLICATION (as a superuser; on Amazon RDS: GRANT rds_replication TO %s)", r.who(), r.who(), r.who())
	}

	watched := map[string]*watchedTable{} // by quoted schema.table
	inspectEntries(ctx, conn, r, cfg, "watch", cfg.Watch, false, watched)
	inspectEntries(ctx, conn, r, cfg, "protect", cfg.Protect, true, nil)

	inspectPublication(ctx, conn, r, cfg, watched)
	inspectEventTrigger(ctx, conn, r, cfg, watched)
	inspectSlot(ctx, conn, r, cfg)

	if err := inspectOwnObjects(ctx, conn, r); err != nil {
		return nil, err
	}
	switch {
	case r.missingPrivileges > 0:
	case isSuper:
		r.add(OK, CodeGeneral, "postgres.url", "role %s is a superuser; `cdc-cleaner setup --role NAME` creates a role with only the privileges run needs", r.who())
	default:
		r.add(OK, CodeGeneral, "postgres.url", "role %s has the privileges run needs", r.who())
	}
	return r, nil
}

// inspectMessages reports which storages honour cdc_cleaner logical
// decoding messages, and who may emit them.
func inspectMessages(ctx context.Context, conn Querier, r *Report, cfg *config.Config) {
	var names []string
	for name, s := range cfg.Storages {
		if s.Messages {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		r.add(OK, CodeGeneral, "", "cdc_cleaner logical decoding messages are ignored (no storage sets messages: true)")
		return
	}
	field := "storages." + names[0] + ".messages"
	if r.ServerVersion >= 130000 && r.ServerVersion < 140000 {
		r.add(Warning, CodeGeneral, field, "PostgreSQL %d does not send logical decoding messages to the cleaner (they need PostgreSQL 14): requests with pg_logical_emit_message are not seen", r.ServerVersion/10000)
		return
	}
	// The function is executable by PUBLIC unless revoked.
	// Its signatures differ by version (17 added a flush argument): the
	// hint names them as this server has them.
	var public bool
	var signatures string
	err := conn.QueryRow(ctx, `SELECT coalesce(bool_or(has_function_privilege('public', p.oid, 'EXECUTE')), false),
			coalesce(string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid), '')
		FROM pg_proc p WHERE p.proname = 'pg_logical_emit_message' AND p.pronamespace = 'pg_catalog'::regnamespace`).Scan(&public, &signatures)
	switch {
	case err != nil:
		r.add(Warning, CodeUnchecked, field, "cannot tell who may call pg_logical_emit_message: %v", err)
	case public:
		r.add(Warning, CodeGeneral, field, "storages %s honour cdc_cleaner logical decoding messages, and any role that can log in may emit one (pg_logical_emit_message is executable by PUBLIC), even in a read-only transaction, to have a file of these storages deleted: REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, then GRANT it to the application's role", strings.Join(names, ", "), signatures)
	default:
		r.add(OK, CodeGeneral, field, "storages %s honour cdc_cleaner logical decoding messages; pg_logical_emit_message is not executable by PUBLIC", strings.Join(names, ", "))
	}
}

// inspectOwnObjects checks the cleaner's schema, its failed_deletions table
// with the id sequence (as package ledger, which writes it, needs them:
// ledger.CheckReadiness), and, when a json column is watched or protected,
// cdc_cleaner.try_jsonb: that they exist and that the current role may use
// them as run does. A try_jsonb an earlier version installed PARALLEL SAFE
// is a problem when a json column calls it, a warning otherwise.
func inspectOwnObjects(ctx context.Context, conn Querier, r *Report) error {
	const missingTable = "table cdc_cleaner.failed_deletions does not exist: run cdc-cleaner setup (or apply migrations/)"
	var usage bool
	err := conn.QueryRow(ctx, "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = 'cdc_cleaner'").Scan(&usage)
	if errors.Is(err, pgx.ErrNoRows) {
		r.add(Problem, CodeCleanerSchema, "", missingTable)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up schema cdc_cleaner: %w", err)
	}
	if !usage {
		r.missingPrivilege(CodeCleanerSchema, "", "role %s may not use schema cdc_cleaner, where run records failed deletions in cdc_cleaner.failed_deletions: GRANT USAGE ON SCHEMA cdc_cleaner TO %s", r.who(), r.who())
	}

	ledgerReady, err := ledger.CheckReadiness(ctx, conn)
	switch {
	case err != nil:
		return err
	case !ledgerReady.Exists:
		r.add(Problem, CodeCleanerSchema, "", missingTable)
	default:
		if !ledgerReady.OnceIndex {
			r.Findings = append(r.Findings, Finding{Severity: Problem, Code: CodeCleanerSchema, SetupFixes: true,
				Message: "the index cdc_cleaner.failed_deletions_once_idx, which keeps a replayed failure from being recorded twice, does not exist (the schema is from an earlier version): run cdc-cleaner setup (or apply migrations/0001_cdc_cleaner_schema.sql)"})
		}
		if !ledgerReady.CanInsert {
			r.missingPrivilege(CodeCleanerSchema, "", "role %s may not INSERT into cdc_cleaner.failed_deletions, where run records what it could not delete: GRANT INSERT ON cdc_cleaner.failed_deletions TO %s", r.who(), r.who())
		}
		if seq := ledgerReady.Sequence; seq != "" && !ledgerReady.CanUseSequence {
			r.missingPrivilege(CodeCleanerSchema, "", "role %s may not use sequence %s, which numbers the rows of cdc_cleaner.failed_deletions: GRANT USAGE ON SEQUENCE %s TO %s", r.who(), seq, seq, r.who())
		}
	}

	journalReady, err := journal.CheckReadiness(ctx, conn)
	switch {
	case err != nil:
		return err
	case !journalReady.Exists:
		r.Findings = append(r.Findings, Finding{Severity: Problem, Code: CodeCleanerSchema, SetupFixes: true,
			Message: "table cdc_cleaner.journal does not exist (the schema is from an earlier version): run cdc-cleaner setup (or apply migrations/0001_cdc_cleaner_schema.sql); run journals every removal there, so that a file a committed row references again can be restored (README: Undo window)"})
	default:
		var missing []string
		if !journalReady.CanInsert {
			missing = append(missing, "INSERT")
		}
		if !journalReady.CanSelect {
			missing = append(missing, "SELECT")
		}
		if !journalReady.CanDelete {
			missing = append(missing, "DELETE")
		}
		if len(missing) > 0 {
			privs := strings.Join(missing, ", ")
			r.missingPrivilege(CodeCleanerSchema, "", "role %s may not %s on cdc_cleaner.journal, where run journals removals, restores and dangling references: GRANT %s ON cdc_cleaner.journal TO %s", r.who(), privs, privs, r.who())
		}
	}

	needJSON := false
	for _, c := range r.Columns {
		if c.Type.JSONText() { // read through try_jsonb, domains over json too
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
			r.add(Problem, CodeCleanerSchema, "", "function cdc_cleaner.try_jsonb(json), through which the reference check reads json columns, does not exist: run cdc-cleaner setup (or apply migrations/0001_cdc_cleaner_schema.sql)")
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
			r.add(Problem, CodeCleanerSchema, "", msg, marking)
		} else {
			r.add(Warning, CodeCleanerSchema, "", msg+" before configuring a json column", marking)
		}
	}
	if needJSON && !canExecute {
		r.missingPrivilege(CodeCleanerSchema, "", "role %s may not execute cdc_cleaner.try_jsonb(json), through which the reference check reads json columns: GRANT EXECUTE ON FUNCTION cdc_cleaner.try_jsonb(json) TO %s", r.who(), r.who())
	}
	return nil
}

// watchedTable is a watched table as the catalog describes it.
type watchedTable struct {
	field   string // "watch[0]" of its first entry
	oid     uint32
	relkind string
	columns []string // watched columns that exist
}

func inspectEntries(ctx context.Context, conn Querier, r *Report, cfg *config.Config, kind string, entries []*config.Watch, protect bool, watched map[string]*watchedTable) {
	for i, w := range entries {
		field := fmt.Sprintf("%s[%d]", kind, i)
		entryCols := cfg.EntryColumns(kind, i)
		qualified := config.QuoteIdentifier(w.Schema) + "." + config.QuoteIdentifier(w.Name)
		var oid uint32
		var relkind, replident string
		var usage bool
		err := conn.QueryRow(ctx, `SELECT c.oid, c.relkind::text, c.relreplident::text, has_schema_privilege(n.oid, 'USAGE')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, w.Schema, w.Name).Scan(&oid, &relkind, &replident, &usage)
		if errors.Is(err, pgx.ErrNoRows) {
			if hint := tableCaseHint(ctx, conn, w); hint != "" {
				r.add(Problem, CodeGeneral, field+".table", "table %s does not exist; %s", w.Schema+"."+w.Name, hint)
			} else {
				r.add(Problem, CodeGeneral, field+".table", "table %s does not exist (names are case-folded unless double-quoted, as in SQL)", w.Schema+"."+w.Name)
			}
			continue
		}
		if err != nil {
			r.add(Problem, CodeUnchecked, field+".table", "look up %s: %v", qualified, err)
			continue
		}
		if relkind != "r" && relkind != "p" {
			r.add(Problem, CodeGeneral, field+".table", "%s is not a table (relkind %s): only tables and partitioned tables can be watched", qualified, relkind)
			continue
		}
		if !usage && !r.schemaReported[w.Schema] {
			r.schemaReported[w.Schema] = true
			schema := config.QuoteIdentifier(w.Schema)
			r.missingPrivilege(CodeMissingPrivilege, field+".table", "role %s may not use schema %s, where %s is, so the reference check cannot read it: GRANT USAGE ON SCHEMA %s TO %s", r.who(), schema, qualified, schema, r.who())
		}
		var wt *watchedTable
		if watched != nil {
			if wt = watched[qualified]; wt == nil {
				wt = &watchedTable{field: field, oid: oid, relkind: relkind}
				watched[qualified] = wt
			}
		}
		if !protect {
			inspectDescendants(ctx, conn, r, cfg, field, oid, relkind, qualified)
		}
		identity, err := identityColumns(ctx, conn, oid, replident)
		// Unknown, the replica identity is reported once, as not checked.
		identityReported := err != nil
		if err != nil && !protect {
			r.add(Problem, CodeReplicaIdentity, field+".table", "could not check the replica identity of %s (whether UPDATE and DELETE carry old file paths): %v", qualified, err)
		}
		if !inspectMatch(ctx, conn, r, field, w, oid, qualified, protect, identity, &identityReported, wt) {
			continue
		}
		if w.Template != nil {
			inspectTemplate(ctx, conn, r, field, w, entryCols[0], oid, relkind, qualified, protect, identity, &identityReported, wt)
			continue
		}
		for j, col := range w.ColNames {
			cfield := fmt.Sprintf("%s.columns[%d]", field, j)
			var typ, generated string
			var typOID uint32
			var attnum int16
			var indexed, canSelect bool
			// has_column_privilege counts a grant on the whole table and
			// one on the column alike.
			err := conn.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod), a.attgenerated::text, a.atttypid, a.attnum,
				EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND x.indkey[0] = a.attnum),
				has_column_privilege(a.attrelid, a.attnum, 'SELECT')
				FROM pg_attribute a
				WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, oid, col).
				Scan(&typ, &generated, &typOID, &attnum, &indexed, &canSelect)
			if errors.Is(err, pgx.ErrNoRows) {
				if hint := columnCaseHint(ctx, conn, oid, col, w.Columns[j]); hint != "" {
					r.add(Problem, CodeGeneral, cfield, "column %q not found in %s; %s", col, w.Schema+"."+w.Name, hint)
				} else {
					r.add(Problem, CodeGeneral, cfield, "column %q not found in %s: if it was renamed, put its new name in the configuration; if it was dropped, remove it (then cdc-cleaner scan finds the files it referenced); a running cleaner holds the changes that follow until then", col, w.Schema+"."+w.Name)
				}
				continue
			}
			if err != nil {
				r.add(Problem, CodeUnchecked, cfield, "look up column %q of %s: %v", col, qualified, err)
				continue
			}
			if !canSelect {
				qcol := config.QuoteIdentifier(col)
				r.missingPrivilege(CodeMissingPrivilege, cfield, "role %s may not read column %s of %s, which the reference check searches: GRANT SELECT (%s) ON %s TO %s", r.who(), qcol, qualified, qcol, qualified, r.who())
			}
			if generated != "" && !protect {
				r.add(Problem, CodeGeneral, cfield, "column %q of %s is a generated column: pgoutput does not send generated columns, so it cannot be watched (watch the columns it is computed from, or list it under protect)", col, qualified)
				continue
			}
			c := entryCols[j]
			c.TypeName, c.TypeOID, c.TableOID, c.AttNum, c.Partitioned, c.Indexed = typ, typOID, oid, attnum, relkind == "p", indexed
			kinds, err := catalog.TypeKinds(ctx, conn, []uint32{typOID})
			if err != nil {
				r.add(Problem, CodeUnchecked, cfield, "look up the type of column %q of %s: %v", col, qualified, err)
				continue
			}
			c.Type = kinds[typOID]
			if c.Type.Kind == cdccleaner.KindNone {
				r.add(Problem, CodeGeneral, cfield, "column %q of %s has type %s: file columns must be text, varchar, character, an array of them, or json/jsonb", col, qualified, typ)
				continue
			}
			if c.Type.Padded {
				r.add(OK, CodeGeneral, cfield, "column %q of %s is %s: its values are padded with spaces, which PostgreSQL ignores when it compares them, so trailing spaces are not part of a path (a path cannot end in a space there)", col, qualified, typ)
			}
			if w.JSONPath != "" && c.Type.Kind != cdccleaner.KindJSON {
				r.add(Problem, CodeGeneral, field+".json_path", "json_path is set but column %q of %s is %s, not json or jsonb", col, qualified, typ)
				continue
			}
			r.Columns = append(r.Columns, c)
			if wt != nil {
				wt.columns = append(wt.columns, col)
			}
			if !protect && !identity[col] && !identityReported {
				identityReported = true
				r.add(Problem, CodeReplicaIdentity, field+".table", "%s lacks REPLICA IDENTITY FULL (and column %q is not in its replica identity index), so UPDATE and DELETE would not carry old file paths: run cdc-cleaner setup, or ALTER TABLE %s REPLICA IDENTITY FULL", qualified, col, qualified)
			}
			// Only a jsonb or array column is served by a GIN index.
			var gin bool
			var ginErr error
			if c.Type.Kind == cdccleaner.KindJSON && !c.Type.JSONText() || c.Type.Kind == cdccleaner.KindArray {
				gin, ginErr = hasGIN(ctx, conn, oid, col)
			}
			switch {
			case ginErr != nil:
				r.add(Warning, CodeUnchecked, cfield, "could not check for a GIN index on %s.%q, without which every reference check scans the table: %v", qualified, col, ginErr)
			case c.Type.JSONText():
				r.add(Warning, CodeGeneral, cfield, "column %q of %s is json, not jsonb: no index can serve the reference check, which reads every row; ALTER TABLE %s ALTER COLUMN %s TYPE jsonb, then CREATE INDEX ON %s USING gin (%s jsonb_path_ops)", col, qualified, qualified, config.QuoteIdentifier(col), qualified, config.QuoteIdentifier(col))
			case c.Type.Kind == cdccleaner.KindJSON && !gin:
				r.add(Warning, CodeGeneral, cfield, "no GIN index on %s.%q: every reference check scans the table; CREATE INDEX ON %s USING gin (%s jsonb_path_ops)", qualified, col, qualified, config.QuoteIdentifier(col))
			case c.Type.Kind == cdccleaner.KindArray && !gin:
				r.add(Warning, CodeGeneral, cfield, "no GIN index on %s.%q: every reference check scans the table; CREATE INDEX ON %s USING gin (%s)", qualified, col, qualified, config.QuoteIdentifier(col))
			case c.Type.Kind == cdccleaner.KindText && !indexed:
				r.add(Warning, CodeGeneral, cfield, "no index starts with %s.%q: every reference check scans the table; CREATE INDEX ON %s (%s)", qualified, col, qualified, config.QuoteIdentifier(col))
			}
		}
	}
}

// attribute is what Inspect reads of a column of a configured table.
type attribute struct {
	typ, generated string
	typOID         uint32
	attnum         int16
	indexed        bool // an index starts with it
	canSelect      bool
}

// lookupAttribute reads column col of the table oid; pgx.ErrNoRows when
// there is none.
func lookupAttribute(ctx context.Context, conn Querier, oid uint32, col string) (attribute, error) {
	var a attribute
	// has_column_privilege counts a grant on the whole table and one on
	// the column alike.
	err := conn.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod), a.attgenerated::text, a.atttypid, a.attnum,
		EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = a.attrelid AND x.indkey[0] = a.attnum),
		has_column_privilege(a.attrelid, a.attnum, 'SELECT')
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, oid, col).
		Scan(&a.typ, &a.generated, &a.typOID, &a.attnum, &a.indexed, &a.canSelect)
	return a, err
}

// inspectReadColumn checks a column that a template or a match reads (not
// the path column of the columns form): that it exists, that the role may
// read it, that pgoutput sends it (not generated, for a watch entry) and
// that UPDATE and DELETE carry its old value. where says how the entry
// names it, for messages. It returns the attribute, and false when the
// entry cannot be used.
func inspectReadColumn(ctx context.Context, conn Querier, r *Report, field, cfield, where string, w *config.Watch, oid uint32, qualified, col string, protect bool, identity map[string]bool, identityReported *bool) (attribute, bool) {
	a, err := lookupAttribute(ctx, conn, oid, col)
	if errors.Is(err, pgx.ErrNoRows) {
		hint := columnCaseHint(ctx, conn, oid, col, col)
		if hint == "" {
			hint = "if it was renamed, put its new name in the configuration; if it was dropped, change the entry"
		}
		r.add(Problem, CodeGeneral, cfield, "%scolumn %q not found in %s; %s", where, col, w.Schema+"."+w.Name, hint)
		return a, false
	}
	if err != nil {
		r.add(Problem, CodeUnchecked, cfield, "%slook up column %q of %s: %v", where, col, qualified, err)
		return a, false
	}
	if !a.canSelect {
		qcol := config.QuoteIdentifier(col)
		r.missingPrivilege(CodeMissingPrivilege, cfield, "role %s may not read column %s of %s, which the reference check reads: GRANT SELECT (%s) ON %s TO %s", r.who(), qcol, qualified, qcol, qualified, r.who())
	}
	if a.generated != "" && !protect {
		r.add(Problem, CodeGeneral, cfield, "%scolumn %q of %s is a generated column: pgoutput does not send generated columns, so a watch entry cannot read it", where, col, qualified)
		return a, false
	}
	if !protect && !identity[col] && !*identityReported {
		*identityReported = true
		r.add(Problem, CodeReplicaIdentity, field+".table", "%s lacks REPLICA IDENTITY FULL (and column %q is not in its replica identity index), so UPDATE and DELETE would not carry old file paths: run cdc-cleaner setup, or ALTER TABLE %s REPLICA IDENTITY FULL", qualified, col, qualified)
	}
	return a, true
}

// inspectMatch checks the columns w's match compares; false when one
// cannot be used.
func inspectMatch(ctx context.Context, conn Querier, r *Report, field string, w *config.Watch, oid uint32, qualified string, protect bool, identity map[string]bool, identityReported *bool, wt *watchedTable) bool {
	ok := true
	for _, m := range w.MatchConds {
		mfield := field + ".match." + m.Column
		a, found := inspectReadColumn(ctx, conn, r, field, mfield, "", w, oid, qualified, m.Column, protect, identity, identityReported)
		if !found {
			ok = false
			continue
		}
		kinds, err := catalog.TypeKinds(ctx, conn, []uint32{a.typOID})
		if err != nil {
			r.add(Problem, CodeUnchecked, mfield, "look up the type of column %q of %s: %v", m.Column, qualified, err)
			ok = false
			continue
		}
		if kinds[a.typOID].Kind != cdccleaner.KindText {
			r.add(Problem, CodeGeneral, mfield, "column %q of %s has type %s: match compares text, varchar or character columns (a change sends other types in a form their text cast does not give, e.g. a boolean as t)", m.Column, w.Schema+"."+w.Name, a.typ)
			ok = false
			continue
		}
		if wt != nil {
			wt.columns = append(wt.columns, m.Column)
		}
	}
	return ok
}

// inspectTemplate checks the columns of w's path template (text columns,
// each readable and sent), says which index serves the reference check's
// lookup, and adds the entry to r.Columns.
func inspectTemplate(ctx context.Context, conn Querier, r *Report, field string, w *config.Watch, c cdccleaner.Column, oid uint32, relkind, qualified string, protect bool, identity map[string]bool, identityReported *bool, wt *watchedTable) {
	pfield := field + ".path"
	where := fmt.Sprintf("%q: ", w.Template.Source)
	cols := w.Template.Columns()
	attrs := make([]attribute, len(cols))
	ok := true
	for i, col := range cols {
		a, found := inspectReadColumn(ctx, conn, r, field, pfield, where, w, oid, qualified, col, protect, identity, identityReported)
		if !found {
			ok = false
			continue
		}
		kinds, err := catalog.TypeKinds(ctx, conn, []uint32{a.typOID})
		if err != nil {
			r.add(Problem, CodeUnchecked, pfield, "%slook up the type of column %q of %s: %v", where, col, qualified, err)
			ok = false
			continue
		}
		if k := kinds[a.typOID]; k.Kind != cdccleaner.KindText {
			r.add(Problem, CodeGeneral, pfield, "%scolumn %q of %s has type %s: a template's columns are text, varchar or character (a path is built from their values)", where, col, w.Schema+"."+w.Name, a.typ)
			ok = false
			continue
		}
		attrs[i] = a
	}
	if !ok {
		return
	}
	c.TableOID, c.Partitioned, c.Type = oid, relkind == "p", cdccleaner.ColumnType{Kind: cdccleaner.KindText}
	var served []string
	for i, a := range attrs {
		if a.indexed {
			served = append(served, cols[i])
		}
	}
	c.Indexed = len(served) > 0
	r.Columns = append(r.Columns, c)
	if wt != nil {
		wt.columns = append(wt.columns, cols...)
	}
	quoted := make([]string, len(cols))
	for i, col := range cols {
		quoted[i] = config.QuoteIdentifier(col)
	}
	if c.Indexed {
		r.add(OK, CodeGeneral, pfield, "%sthe reference check maps each path back to %s and looks rows up by them; an index on %s serves it", where, strings.Join(cols, ", "), strings.Join(served, ", "))
	} else {
		r.add(Warning, CodeGeneral, pfield, "%sno index starts with %s: the reference check maps each path back to %s and looks rows up by them, scanning the table for every batch; CREATE INDEX ON %s (%s)", where, strings.Join(cols, " or "), strings.Join(cols, ", "), qualified, strings.Join(quoted, ", "))
	}
}

// identityColumns returns the columns whose old values UPDATE and DELETE
// carry: all of them for REPLICA IDENTITY FULL, the index's for DEFAULT
// (primary key) and USING INDEX, none for NOTHING. An error means it could
// not tell.
func identityColumns(ctx context.Context, conn Querier, oid uint32, replident string) (map[string]bool, error) {
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
		return cols, nil
	}
	rows, err := conn.Query(ctx, q, oid)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		cols[n] = true
	}
	return cols, nil
}

func inspectPublication(ctx context.Context, conn Querier, r *Report, cfg *config.Config, watched map[string]*watchedTable) {
	const field = "postgres.publication"
	name := cfg.Postgres.Publication
	var oid uint32
	var ins, upd, del, trunc, viaRoot, allTables, owned bool
	err := conn.QueryRow(ctx, `SELECT p.oid, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot, p.puballtables, `+publicationOwnedSQL+`
		FROM pg_publication p WHERE p.pubname = $1`, name).Scan(&oid, &ins, &upd, &del, &trunc, &viaRoot, &allTables, &owned)
	if errors.Is(err, pgx.ErrNoRows) {
		r.add(Problem, CodePublication, field, "publication %q does not exist: run cdc-cleaner setup", name)
		return
	}
	if err != nil {
		r.add(Problem, CodePublication, field, "look up publication %q: %v", name, err)
		return
	}
	// What run needs of the publication, whoever made it.
	fix := "run cdc-cleaner setup"
	if !owned {
		fix = "change it (ALTER PUBLICATION), or set postgres.publication to another name and run cdc-cleaner setup"
	}
	if !upd || !del {
		r.add(Problem, CodePublication, field, "publication %q does not publish both update and delete: %s", name, fix)
	}
	if !ins {
		r.add(Problem, CodePublication, field, "publication %q does not publish insert, which the cleaner compares with the files it removed so that a file referenced again comes back (it was made by an earlier version of setup, or by hand): %s", name, fix)
	}
	if !trunc {
		r.add(Warning, CodePublication, field, "publication %q does not publish truncate: a TRUNCATE of a watched table would go unnoticed", name)
	}
	rows, err := conn.Query(ctx, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_publication_tables WHERE pubname = $1", name)
	if err != nil {
		r.add(Problem, CodePublication, field, "list tables of publication %q: %v", name, err)
		return
	}
	published, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		r.add(Problem, CodePublication, field, "list tables of publication %q: %v", name, err)
		return
	}
	// quote_ident leaves simple names bare; normalise both sides.
	norm := func(q string) string { return strings.ReplaceAll(q, `"`, "") }
	in := map[string]bool{}
	for _, p := range published {
		in[norm(p)] = true
	}
	want := map[string]bool{}
	var missing, extra []string
	for t := range watched {
		want[norm(t)] = true
		if !in[norm(t)] {
			missing = append(missing, t)
		}
	}
	for _, p := range published {
		if !want[norm(p)] {
			extra = append(extra, p)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		r.add(Problem, CodePublication, field, "publication %q does not cover %s: %s", name, strings.Join(missing, ", "), fix)
	}
	switch {
	case !owned:
		what := "it covers the watched tables"
		if allTables {
			what = "it is FOR ALL TABLES"
		} else if len(extra) > 0 {
			what = fmt.Sprintf("it also covers %d tables that are not watched (%s)", len(extra), firstFew(extra, 5))
		}
		r.conflict(ForeignPublication, Warning, CodePublication, field, "publication %q was not created by cdc-cleaner setup (%s): run may read it, but setup will not change it and teardown will not drop it; to give the cleaner its own, set postgres.publication to another name and run cdc-cleaner setup", name, what)
	case len(extra) > 0:
		r.add(Warning, CodePublication, field, "publication %q also covers tables that are not watched (%s): run cdc-cleaner setup", name, firstFew(extra, 5))
	case len(missing) == 0:
		r.add(OK, CodePublication, field, "publication %q covers the watched tables", name)
	}
	inspectPublicationFilters(ctx, conn, r, name, oid, viaRoot, fix, watched)
}

// inspectPublicationFilters reports what makes a publication hold back
// changes of a watched table: a row filter (deletes of rows it excludes
// never arrive), a column list without a watched column (its values never
// arrive), and, for a partitioned table, publishing through the partitions
// (changes arrive under their names, which are not watched).
func inspectPublicationFilters(ctx context.Context, conn Querier, r *Report, name string, pubOID uint32, viaRoot bool, fix string, watched map[string]*watchedTable) {
	const field = "postgres.publication"
	tables := make([]string, 0, len(watched))
	for t := range watched {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		wt := watched[t]
		if wt.relkind == "p" && !viaRoot {
			r.add(Problem, CodePublication, field, "publication %q does not publish_via_partition_root, and %s is partitioned: its changes arrive under the names of its partitions, which are not watched, so their files leak; %s (ALTER PUBLICATION %s SET (publish_via_partition_root = true))", name, t, fix, config.QuoteIdentifier(name))
		}
	}
	if r.ServerVersion < 150000 {
		return // row filters and column lists arrived in PostgreSQL 15
	}
	for _, t := range tables {
		wt := watched[t]
		// The filter of the table itself, or of an ancestor it is
		// published through.
		var qual *string
		var attrs []string
		err := conn.QueryRow(ctx, `SELECT pg_get_expr(pr.prqual, pr.prrelid),
				(SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
				  WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs::int2[]))
			FROM pg_publication_rel pr
			WHERE pr.prpubid = $1 AND pr.prrelid = $2`, pubOID, wt.oid).Scan(&qual, &attrs)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			r.add(Problem, CodePublication, field, "read the row filter and column list of %s in publication %q: %v", t, name, err)
			continue
		}
		if qual != nil {
			r.add(Problem, CodePublication, field, "publication %q has a row filter on %s (WHERE %s): UPDATE and DELETE of rows outside it never reach the cleaner, so their files leak; remove it: %s", name, t, *qual, fix)
		}
		if attrs != nil {
			var lacking []string
			for _, c := range wt.columns {
				if !slices.Contains(attrs, c) {
					lacking = append(lacking, strconv.Quote(c))
				}
			}
			if len(lacking) > 0 {
				r.add(Problem, CodePublication, field, "publication %q publishes only some columns of %s (%s), not the watched %s: their old values never reach the cleaner; remove the column list: %s", name, t, strings.Join(attrs, ", "), strings.Join(lacking, ", "), fix)
			}
		}
	}
}

// firstFew joins up to n items, saying how many more there are.
func firstFew(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

func inspectSlot(ctx context.Context, conn Querier, r *Report, cfg *config.Config) {
	const field = "postgres.slot"
	name := cfg.Postgres.Slot
	var plugin, database string
	var pid *int32
	var retained *int64
	err := conn.QueryRow(ctx, `SELECT plugin, database, active_pid,
		pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&plugin, &database, &pid, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		if at := recordedAt(ctx, conn, name); at != "" {
			r.add(Problem, CodeSlot, field, "%s", cdccleaner.SlotLost(name, at, timeline(ctx, conn), r.ServerVersion))
			return
		}
		r.add(Problem, CodeSlot, field, "replication slot %q does not exist: run cdc-cleaner setup", name)
		return
	}
	if err != nil {
		r.add(Problem, CodeSlot, field, "look up slot %q: %v", name, err)
		return
	}
	var current string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		r.add(Problem, CodeSlot, field, "could not check that slot %q belongs to this database (current_database): %v", name, err)
		return
	}
	switch {
	case database != current:
		r.conflict(ForeignSlot, Problem, CodeSlot, field, "slot %q belongs to database %q, not %q (slot names are shared by every database of the server): set postgres.slot to another name", name, database, current)
		return
	case plugin != "pgoutput":
		r.conflict(ForeignSlot, Problem, CodeSlot, field, "slot %q uses output plugin %q, not pgoutput, so it belongs to another consumer: set postgres.slot to another name", name, plugin)
		return
	}
	switch recorded, ok := slotRecorded(ctx, conn, r, name); {
	case !ok:
		return
	case !recorded:
		r.conflict(UnrecordedSlot, Problem, CodeSlot, field, "slot %q exists but was not created by cdc-cleaner setup (cdc_cleaner.slots does not record it): another consumer may read it, and streaming from it would move it past changes that consumer has not read yet. Set postgres.slot to another name and run cdc-cleaner setup; if it is this cleaner's own slot (created by a cdc-cleaner version before cdc_cleaner.slots, by a setup that was interrupted, or by hand for it), record it with cdc-cleaner setup --adopt-slot", name)
		return
	}
	msg := fmt.Sprintf("slot %q exists", name)
	if pid != nil {
		msg += fmt.Sprintf(", in use by PID %d", *pid)
	}
	if retained != nil {
		msg += fmt.Sprintf(", retains %d bytes of WAL", *retained)
	}
	r.add(OK, CodeSlot, field, "%s", msg)
	inspectFailover(ctx, conn, r, cfg)
}

// inspectFailover reports whether the slot survives a failover to a
// physical standby, and whether it can run ahead of what the standbys
// received. A primary says which physical slots standbys use and whether
// a standby sends hot_standby_feedback (the slot's xmin); the standbys'
// own settings (sync_replication_slots) are told, not checked.
func inspectFailover(ctx context.Context, conn Querier, r *Report, cfg *config.Config) {
	const field = "postgres.failover_slot"
	name := cfg.Postgres.Slot
	// Physical slots, and whether a standby streams from each.
	rows, err := conn.Query(ctx, `SELECT slot_name::text, active, xmin IS NOT NULL FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY 1`)
	if err != nil {
		r.add(Warning, CodeFailover, field, "could not list the physical replication slots: %v", err)
		return
	}
	var physical, active, noFeedback []string
	for rows.Next() {
		var slot string
		var isActive, feedback bool
		if err := rows.Scan(&slot, &isActive, &feedback); err != nil {
			rows.Close()
			r.add(Warning, CodeFailover, field, "could not list the physical replication slots: %v", err)
			return
		}
		physical = append(physical, slot)
		if isActive {
			active = append(active, slot)
			if !feedback {
				noFeedback = append(noFeedback, slot)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		r.add(Warning, CodeFailover, field, "could not list the physical replication slots: %v", err)
		return
	}
	var standbys int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication r
		WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots s WHERE s.active_pid = r.pid AND s.slot_type = 'logical')`).Scan(&standbys); err != nil {
		r.add(Warning, CodeFailover, field, "could not count the standbys (pg_stat_replication): %v", err)
		return
	}
	if r.ServerVersion < 170000 {
		if standbys > 0 || len(physical) > 0 {
			r.add(Warning, CodeFailover, field, "PostgreSQL %d has no failover slots: after a failover the promoted standby has no slot %q, and the cleaner stops saying so. Then run cdc-cleaner setup (a new slot) and cdc-cleaner scan for the files orphaned in between (README: Failover); PostgreSQL 17 keeps the slot on standbys", r.ServerVersion/10000, name)
		} else {
			r.add(OK, CodeFailover, field, "no standby streams from this server (PostgreSQL %d has no failover slots; README: Failover)", r.ServerVersion/10000)
		}
		return
	}
	var failover bool
	if err := conn.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&failover); err != nil {
		r.add(Warning, CodeFailover, field, "could not read whether slot %q is a failover slot: %v", name, err)
		return
	}
	var db string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		r.add(Warning, CodeFailover, field, "current_database: %v", err)
		return
	}
	switch {
	case !failover && cfg.Postgres.FailoverSlot:
		r.add(Warning, CodeFailover, field, "slot %q is not a failover slot, so a promoted standby will not have it: make it one while the cleaner is stopped, over a replication connection: psql \"dbname=%s replication=database\" -c \"ALTER_REPLICATION_SLOT %s (FAILOVER true)\" (README: Failover)", name, db, name)
		return
	case !failover:
		r.add(OK, CodeFailover, field, "slot %q is not a failover slot (postgres.failover_slot is false): after a failover, run cdc-cleaner setup and cdc-cleaner scan (README: Failover)", name)
		return
	}
	standbyAdvice := fmt.Sprintf("on each standby set sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name to its physical slot and dbname=%s in primary_conninfo", db)
	if len(physical) == 0 {
		r.add(Warning, CodeFailover, field, "slot %q is a failover slot, but no standby uses a physical replication slot here, which synchronizing it needs: create one per standby (SELECT pg_create_physical_replication_slot('standby1')), then %s (README: Failover)", name, standbyAdvice)
		return
	}
	var synced string
	if err := conn.QueryRow(ctx, `SELECT current_setting('synchronized_standby_slots', true)`).Scan(&synced); err != nil {
		r.add(Warning, CodeFailover, field, "could not read synchronized_standby_slots: %v", err)
		return
	}
	if strings.TrimSpace(synced) == "" {
		slots := "'" + strings.Join(active, ",") + "'"
		if len(active) == 0 {
			slots = fmt.Sprintf("the physical slots of the standbys that may be promoted (no standby streams from %s now)", strings.Join(physical, ", "))
		}
		r.add(Warning, CodeFailover, field, "synchronized_standby_slots is empty: the cleaner may receive, and delete the files of, transactions that no standby has received yet; after a failover to a standby those transactions are gone while their files are in the trash. Set synchronized_standby_slots = %s on this server, naming only standbys that stream (it holds back every failover slot of the server while one of them does not), and %s (README: Failover)", slots, standbyAdvice)
		return
	}
	if len(noFeedback) > 0 {
		r.add(Warning, CodeFailover, field, "the standbys on physical slots %s do not send hot_standby_feedback (the slots have no xmin), which slot synchronization needs: %s (README: Failover)", strings.Join(noFeedback, ", "), standbyAdvice)
		return
	}
	r.add(OK, CodeFailover, field, "slot %q is a failover slot; the cleaner receives only what the standbys on %s have received (synchronized_standby_slots); %s", name, synced, standbyAdvice)
}

// recordedAt returns when setup recorded creating slot (cdc_cleaner.slots),
// or "" when it did not or that cannot be read.
func recordedAt(ctx context.Context, conn Querier, slot string) string {
	var at string
	err := conn.QueryRow(ctx, cdccleaner.SlotRecordedSQL(slot)).Scan(&at)
	if err != nil {
		return ""
	}
	return at
}

// timeline is the server's current timeline, or 0 when it cannot be read
// (a server that restricts pg_control_checkpoint).
func timeline(ctx context.Context, conn Querier) int {
	var tli int
	if err := conn.QueryRow(ctx, `SELECT timeline_id FROM pg_control_checkpoint()`).Scan(&tli); err != nil {
		return 0
	}
	return tli
}

// slotRecorded reports whether cdc_cleaner.slots records slot as one setup
// created. When it cannot tell (the current role may not read the table,
// or a query failed), it adds a problem saying why and returns ok false.
func slotRecorded(ctx context.Context, conn Querier, r *Report, slot string) (recorded, ok bool) {
	const field = "postgres.slot"
	var canSelect bool
	err := conn.QueryRow(ctx, `SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'cdc_cleaner' AND c.relname = 'slots'`).Scan(&canSelect)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// No record at all (setup has not run, or an earlier version did,
		// before the record was kept): the slot is not known as setup's.
		return false, true
	case err != nil:
		r.add(Problem, CodeSlot, field, "look up cdc_cleaner.slots: %v", err)
		return false, false
	case !canSelect:
		r.missingPrivilege(CodeCleanerSchema, field, "role %s may not read cdc_cleaner.slots, which records the slots setup created: GRANT USAGE ON SCHEMA cdc_cleaner TO %s; GRANT SELECT ON cdc_cleaner.slots TO %s", r.who(), r.who(), r.who())
		return false, false
	}
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM cdc_cleaner.slots WHERE slot_name = $1)", slot).Scan(&recorded); err != nil {
		r.add(Problem, CodeSlot, field, "read cdc_cleaner.slots: %v", err)
		return false, false
	}
	return recorded, true
}

// inspectEventTrigger checks the event trigger setup installs for
// partitioned watched tables: a version from before triggerFunctionVersion
// can make the application's DDL fail, and one that no partitioned table
// needs should go.
func inspectEventTrigger(ctx context.Context, conn Querier, r *Report, cfg *config.Config, watched map[string]*watchedTable) {
	name := EventTriggerName(cfg.Postgres.Publication)
	var src string
	err := conn.QueryRow(ctx, `SELECT p.prosrc FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid WHERE e.evtname = $1`, name).Scan(&src)
	if errors.Is(err, pgx.ErrNoRows) {
		return
	}
	if err != nil {
		r.add(Problem, CodeUnchecked, "", "look up event trigger %s: %v", name, err)
		return
	}
	partitioned := false
	for _, wt := range watched {
		partitioned = partitioned || wt.relkind == "p"
	}
	switch {
	case !strings.Contains(src, triggerFunctionVersion):
		r.Findings = append(r.Findings, Finding{Severity: Problem, Code: CodeGeneral, SetupFixes: true, Message: fmt.Sprintf(
			"the event trigger %s comes from an earlier cdc-cleaner setup, whose function can make the application's own DDL fail (CREATE TABLE, ALTER TABLE: permission denied for schema pg_toast): run cdc-cleaner setup as a superuser to replace it (or remove it, when no watched table is partitioned), or DROP EVENT TRIGGER %s",
			name, config.QuoteIdentifier(name))})
	case !partitioned:
		r.add(Warning, CodeGeneral, "", "the event trigger %s is not needed (no watched table is partitioned): run cdc-cleaner setup as a superuser to remove it, or DROP EVENT TRIGGER %s", name, config.QuoteIdentifier(name))
	}
}

// inspectDescendants checks what lies below a watched table: every partition
// of a partitioned table must have REPLICA IDENTITY FULL (the publication
// publishes their changes), and inheritance children are not watched.
func inspectDescendants(ctx context.Context, conn Querier, r *Report, cfg *config.Config, field string, oid uint32, relkind, qualified string) {
	switch relkind {
	case "p":
		var lacking *string
		err := conn.QueryRow(ctx, `SELECT string_agg(t.relid::regclass::text, ', ')
			FROM pg_partition_tree($1) t JOIN pg_class c ON c.oid = t.relid
			WHERE c.relreplident <> 'f' AND c.relkind IN ('r', 'p')`, oid).Scan(&lacking)
		if err != nil {
			r.add(Problem, CodeUnchecked, field+".table", "list partitions of %s: %v", qualified, err)
			return
		}
		if lacking != nil {
			r.add(Problem, CodeReplicaIdentity, field+".table", "partitions of %s lack REPLICA IDENTITY FULL (%s): their UPDATE and DELETE would not carry old file paths (or fail, without a primary key); run cdc-cleaner setup", qualified, *lacking)
		}
		r.add(Warning, CodeGeneral, field+".table", "%s is partitioned: a TRUNCATE, DETACH PARTITION or DROP TABLE of one of its partitions sends the cleaner nothing (pgoutput publishes partitions through their root and skips their truncates), so the files of those rows are not cleaned; run cdc-cleaner scan after such maintenance", qualified)
		var hasTrigger bool
		trigger := EventTriggerName(cfg.Postgres.Publication)
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1 AND evtenabled <> 'D')", trigger).Scan(&hasTrigger); err != nil {
			r.add(Warning, CodeUnchecked, field+".table", "%s is partitioned, and whether the event trigger %s that gives partitions created later REPLICA IDENTITY FULL is installed could not be checked: %v", qualified, trigger, err)
		} else if !hasTrigger {
			r.add(Warning, CodeGeneral, field+".table", "%s is partitioned and the event trigger %s is missing: partitions created later will lack REPLICA IDENTITY FULL; run cdc-cleaner setup as a superuser, or again after creating partitions", qualified, trigger)
		}
	case "r":
		var children *string
		if err := conn.QueryRow(ctx, "SELECT string_agg(inhrelid::regclass::text, ', ') FROM pg_inherits WHERE inhparent = $1", oid).Scan(&children); err != nil {
			r.add(Warning, CodeUnchecked, field+".table", "could not check %s for inheritance children, whose changes are not watched: %v", qualified, err)
		} else if children != nil {
			r.add(Warning, CodeGeneral, field+".table", "%s has inheritance children (%s): their rows count as references, but changes to them are not watched; add them to watch to clean their files", qualified, *children)
		}
	}
}

// hasGIN reports whether a GIN index covers column col of table oid.
func hasGIN(ctx context.Context, conn Querier, oid uint32, col string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
		JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
		WHERE x.indrelid = $1 AND a.attname = $2 AND am.amname = 'gin')`, oid, col).Scan(&ok)
	return ok, err
}
