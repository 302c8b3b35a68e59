-- Example: the least-privilege role `cdc-cleaner run` logs in as, for a
-- Django project whose model Photo (table public.gallery_photo) has two
-- FileFields, watched with:
--
--   watch:
--     - table: public.gallery_photo
--       columns: [image, thumbnail]
--       storage: media
--
-- The role gets exactly what run needs: LOGIN and REPLICATION (to stream
-- from the slot), SELECT on the watched and protect columns only (all the
-- reference check reads), INSERT on cdc_cleaner.failed_deletions with its id
-- sequence, EXECUTE on cdc_cleaner.try_jsonb; SELECT on
-- failed_deletions, which `cdc-cleaner status` reads; INSERT, SELECT and
-- DELETE on cdc_cleaner.journal, which run writes, reads back and prunes
-- (and history and status read); and SELECT on
-- cdc_cleaner.slots, where run checks that the slot is the cleaner's own. No CREATE, no other
-- column, no superuser: the slot and the publication are created by an
-- administrator (0003) and a REPLICATION role may stream from any slot.
--
-- What follows is exactly the role part of what
--   cdc-cleaner setup --print --role cdc_cleaner_run
-- prints for that configuration. The GRANTs name your tables and columns, so
-- render yours instead of editing this file, and render it again whenever
-- the watch or protect lists change.
--
-- Placeholders:
--   cdc_cleaner_run  the role name; any name, as long as the user in the
--                    postgres.url that run uses is the same.
--   password         none is set here, so that none is in version control.
--                    Set it once, by hand or from your secret store:
--                      ALTER ROLE cdc_cleaner_run PASSWORD '...';
--                    (or use another authentication method in pg_hba.conf).
--
-- Apply after 0001_cdc_cleaner_schema.sql, whose objects it grants on, as a
-- role that owns the tables and may create roles with REPLICATION (a
-- superuser; on Amazon RDS, rds_superuser: the role then gets
-- rds_replication). Every statement is idempotent; none revokes anything.
-- Verify with `cdc-cleaner check` run with the role's configuration: it
-- names the GRANT of any privilege missing.

-- the role cdc-cleaner run logs in as: LOGIN and REPLICATION, nothing else; no password is set here: ALTER ROLE "cdc_cleaner_run" PASSWORD '...'
DO $cdc$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_cleaner_run') THEN
    CREATE ROLE "cdc_cleaner_run" WITH LOGIN;
  ELSIF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'cdc_cleaner_run') THEN
    ALTER ROLE "cdc_cleaner_run" WITH LOGIN;
  END IF;
  IF (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = 'cdc_cleaner_run') THEN
    NULL;
  ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') THEN
    -- Amazon RDS and Aurora grant replication through this role.
    IF NOT pg_has_role('cdc_cleaner_run', 'rds_replication', 'MEMBER') THEN
      GRANT rds_replication TO "cdc_cleaner_run";
    END IF;
  ELSE
    ALTER ROLE "cdc_cleaner_run" WITH REPLICATION;
  END IF;
END
$cdc$;

-- connect to this database (PUBLIC usually may already)
DO $cdc$
BEGIN
  IF NOT has_database_privilege('cdc_cleaner_run', current_database(), 'CONNECT') THEN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), 'cdc_cleaner_run');
  END IF;
END
$cdc$;

-- reach the watched and protect tables and the cleaner's own objects
GRANT USAGE ON SCHEMA "public", cdc_cleaner TO "cdc_cleaner_run";

-- the reference check reads only these columns of "public"."gallery_photo"
GRANT SELECT ("image", "thumbnail") ON TABLE "public"."gallery_photo" TO "cdc_cleaner_run";

-- run records what it could not delete (INSERT, and the id sequence); status counts and lists it (SELECT)
GRANT SELECT, INSERT ON TABLE cdc_cleaner.failed_deletions TO "cdc_cleaner_run";
GRANT USAGE ON SEQUENCE cdc_cleaner.failed_deletions_id_seq TO "cdc_cleaner_run";

-- run journals removals and restores and reads the journal back (INSERT, SELECT), prunes it with the trash (DELETE); history and status read it; its identity column needs no sequence grant
GRANT SELECT, INSERT, DELETE ON TABLE cdc_cleaner.journal TO "cdc_cleaner_run";

-- run streams only from a slot that cdc_cleaner.slots records as the cleaner's own
GRANT SELECT ON TABLE cdc_cleaner.slots TO "cdc_cleaner_run";

-- the reference check reads json (not jsonb) columns through this function
GRANT EXECUTE ON FUNCTION cdc_cleaner.try_jsonb(json) TO "cdc_cleaner_run";

