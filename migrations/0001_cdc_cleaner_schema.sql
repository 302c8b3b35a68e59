-- cdc-cleaner's own schema: where candidates that could not be deleted are
-- recorded, so that nothing is lost silently. `cdc-cleaner setup` runs this
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
