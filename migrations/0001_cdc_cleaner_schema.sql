-- cdc-cleaner's own schema: where candidates that could not be deleted are
-- recorded, so that nothing is lost silently, the journal of what became
-- of removed files, and which replication slots
-- are the cleaner's own. `cdc-cleaner setup` runs this
-- file; teams that apply schema changes with their own tool can apply it
-- instead. It is idempotent.
CREATE SCHEMA IF NOT EXISTS cdc_cleaner;

CREATE TABLE IF NOT EXISTS cdc_cleaner.failed_deletions (
    id          bigserial PRIMARY KEY,
    storage     text        NOT NULL,              -- storage name from the configuration
    path        text        NOT NULL,              -- path as found in the row (NUL bytes replaced)
    reason      text        NOT NULL,              -- short reason, e.g. rejected_path, is_directory
    detail      text        NOT NULL DEFAULT '',   -- the full error
    source      text        NOT NULL DEFAULT '',   -- schema.table.column the path vanished from
    commit_lsn  pg_lsn,                            -- commit LSN of the transaction it vanished in
    commit_time timestamptz,                       -- commit time of that transaction
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS failed_deletions_recorded_at_idx
    ON cdc_cleaner.failed_deletions (recorded_at);

-- A transaction replayed after a crash records its failures again: one row
-- per storage, path, reason, source and commit LSN (run inserts with ON
-- CONFLICT DO NOTHING). Earlier versions could write such duplicates; they
-- are removed once, before the index is created.
DO $once$
BEGIN
  IF to_regclass('cdc_cleaner.failed_deletions_once_idx') IS NULL THEN
    DELETE FROM cdc_cleaner.failed_deletions f
     USING (SELECT id, row_number() OVER (PARTITION BY storage, path, reason, source, commit_lsn ORDER BY id) AS n
              FROM cdc_cleaner.failed_deletions WHERE commit_lsn IS NOT NULL) d
     WHERE f.id = d.id AND d.n > 1;
    CREATE UNIQUE INDEX failed_deletions_once_idx
        ON cdc_cleaner.failed_deletions (storage, md5(path), reason, source, commit_lsn);
  END IF;
END
$once$;

-- The replication slots `cdc-cleaner setup` created in this database. A
-- slot's name says nothing of who reads it: `run` streams only from a slot
-- recorded here, so that it never moves another consumer's slot past
-- changes that consumer has not read, and `teardown` drops only these.
CREATE TABLE IF NOT EXISTS cdc_cleaner.slots (
    slot_name   text        PRIMARY KEY,
    publication text        NOT NULL,              -- the publication it streams
    created_at  timestamptz NOT NULL DEFAULT now(),
    adopted     boolean     NOT NULL DEFAULT false -- recorded by setup --adopt-slot, not created by it
);

-- The journal (promise 7): every removal of a stored file (trashed, deleted,
-- already absent) and every answer to a path referenced again after one
-- (restored, occupied: a new upload won, dangling: it could not be
-- restored). run writes it before the slot confirms the transaction and
-- reads it back for each new reference; `cdc-cleaner history PATH` shows it.
-- It is pruned with the trash: run deletes entries older than twice the
-- storage's trash_retention.
--
-- Append-only and written on the hot path, in one statement per batch: so
-- no primary key. id (an identity, never reused) orders a path's entries as
-- they were written, which is what run reads back (the last one written at
-- or before a commit LSN: a removal replayed after a crash comes after the
-- restore it follows, whatever their LSNs); a unique index on it would be
-- one more index to update on every write and would serve no query.
CREATE TABLE IF NOT EXISTS cdc_cleaner.journal (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    storage     text        NOT NULL,              -- storage name from the configuration
    path        text        NOT NULL,              -- path in the storage (NUL bytes and invalid UTF-8 replaced)
    event       text        NOT NULL,              -- what became of it, see the CHECK below
    location    text        NOT NULL DEFAULT '',   -- where a trashed file went, relative to the storage
    source      text        NOT NULL DEFAULT '',   -- schema.table.column of the change
    xid         bigint,                            -- transaction of the change
    commit_lsn  pg_lsn      NOT NULL,              -- commit LSN of that transaction
    commit_time timestamptz,                       -- commit time of that transaction
    detail      text        NOT NULL DEFAULT '',   -- more, for people (why a reference dangles)
    at          timestamptz NOT NULL DEFAULT now(), -- when the entry was written
    CONSTRAINT journal_event_check CHECK (event IN ('trashed', 'deleted', 'absent', 'restored', 'occupied', 'dangling'))
);

-- The newest entry of a path up to a commit LSN (run, for every new
-- reference) and all entries of a path (history): a hash index, which
-- serves equality on a path of any length (paths come from rows anyone may
-- write, and a btree refuses entries larger than a third of a page, "index
-- row size exceeds maximum", which would make every write of a long path
-- fail and hold the slot), and costs a removal less to maintain than a
-- btree (measured: a 100,000-row write takes about 0.3 s with a btree on
-- md5(path), 0.1 s with this index, 0.2 s with none). A path has few
-- entries; they are sorted after the lookup.
CREATE INDEX IF NOT EXISTS journal_path_idx
    ON cdc_cleaner.journal USING hash (path);

-- Pruning deletes by age; rows are appended in time order, so a BRIN
-- index (a few pages for millions of rows) finds old ones at almost no
-- cost to writes.
CREATE INDEX IF NOT EXISTS journal_at_idx
    ON cdc_cleaner.journal USING brin (at);

-- status counts restored, occupied and dangling entries: a small partial
-- index of the rare events, which removals (nearly every row) never touch.
CREATE INDEX IF NOT EXISTS journal_reference_idx
    ON cdc_cleaner.journal (event) WHERE event NOT IN ('trashed', 'deleted', 'absent');

-- The reference check reads json (not jsonb) columns through this function:
-- a json value that jsonb refuses (a \u0000 escape, a lone surrogate) must
-- not make every check of its storage fail. Rows it cannot read are then
-- searched as text, so they still keep the files they mention.
--
-- PARALLEL UNSAFE: its EXCEPTION block starts a subtransaction, which
-- PostgreSQL refuses in parallel mode ("cannot start subtransactions during
-- a parallel operation"), so a query calling it must never get a parallel
-- plan (PARALLEL SAFE and RESTRICTED both allow one: RESTRICTED still runs
-- it in parallel mode, above a Gather). Earlier cdc-cleaner versions declared
-- it PARALLEL SAFE: running setup again (CREATE OR REPLACE) upgrades it.
CREATE OR REPLACE FUNCTION cdc_cleaner.try_jsonb(v json) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN v::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
