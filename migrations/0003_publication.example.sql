-- Example: REPLICA IDENTITY FULL on the watched tables, the publication,
-- the event trigger that gives partitions created later REPLICA IDENTITY
-- FULL, and the slot, for the Django configuration of
-- 0002_cleaner_role.example.sql (public.gallery_photo, columns image and
-- thumbnail; slot and publication with their default name cdc_cleaner).
--
-- What follows is exactly what
--   cdc-cleaner setup --print
-- prints for that configuration after the statements of 0001. The
-- publication names your watched tables, so render yours instead of editing
-- this file (and again whenever the watch list changes).
--
-- Apply as a role that owns the watched tables and has REPLICATION. The
-- event trigger is installed only when a watched table is partitioned, and
-- needs a superuser (without one it is skipped with a warning and
-- `cdc-cleaner setup` must run again after partitions are created). The
-- statements never change what setup did not create: a publication of the
-- same name without setup's comment, or a slot that cdc_cleaner.slots does
-- not record, makes them fail, naming what to rename.
-- Every statement is idempotent. The last one creates the slot:
-- PostgreSQL refuses that in a transaction that has written, so a migration
-- tool must run it on its own (outside the transaction of the others), or
-- leave it to `cdc-cleaner setup`.

-- UPDATE and DELETE of "public"."gallery_photo" (and of its partitions) must carry the old file paths
DO $cdc$
DECLARE r regclass;
BEGIN
  FOR r IN SELECT c.oid FROM pg_class c
           WHERE c.relreplident <> 'f' AND c.relkind IN ('r', 'p')
             AND (c.oid = '"public"."gallery_photo"'::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree('"public"."gallery_photo"'::regclass)))
  LOOP
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', r);
  END LOOP;
END
$cdc$;

-- when a watched table is partitioned, partitions created later get REPLICA IDENTITY FULL too: an event trigger (needs a superuser; without one, run setup again after creating partitions)
DO $cdc0$
DECLARE
  keyless text := (SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'p' AND (n.nspname::text, c.relname::text) IN (('public', 'gallery_photo'))
                      AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary));
BEGIN
  IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                  WHERE c.relkind = 'p' AND (n.nspname::text, c.relname::text) IN (('public', 'gallery_photo'))) THEN
    BEGIN
      EXECUTE 'CREATE OR REPLACE FUNCTION cdc_cleaner."replica_identity_cdc_cleaner"() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog SET lock_timeout = ''5s'' AS $cdc$
-- cdc-cleaner event trigger function, version 2: it never makes the DDL that fired it fail
DECLARE r regclass;
BEGIN
  FOR r IN
    SELECT DISTINCT t.relid::regclass
      FROM pg_event_trigger_ddl_commands() d
      CROSS JOIN LATERAL pg_partition_tree(d.objid) t
      JOIN pg_class c ON c.oid = t.relid
     WHERE d.classid = ''pg_catalog.pg_class''::regclass
       AND c.relkind IN (''r'', ''p'') AND c.relreplident <> ''f''
       AND EXISTS (SELECT 1 FROM pg_partition_ancestors(d.objid) a
                     JOIN pg_publication_rel pr ON pr.prrelid = a.relid
                     JOIN pg_publication p ON p.oid = pr.prpubid
                    WHERE p.pubname = ''cdc_cleaner'')
  LOOP
    BEGIN
      EXECUTE format(''ALTER TABLE %s REPLICA IDENTITY FULL'', r);
    EXCEPTION WHEN others THEN
      RAISE WARNING ''cdc-cleaner: could not set REPLICA IDENTITY FULL on partition %: %'', r, SQLERRM
        USING HINT = ''UPDATE and DELETE of its rows will not carry old file paths, so their files are not cleaned: run ALTER TABLE ... REPLICA IDENTITY FULL as its owner, or cdc-cleaner setup'';
    END;
  END LOOP;
EXCEPTION WHEN others THEN
  RAISE WARNING ''cdc-cleaner: the event trigger that gives new partitions REPLICA IDENTITY FULL failed: %'', SQLERRM
    USING HINT = ''the statement itself went through; run cdc-cleaner check'';
END
$cdc$';
      DROP EVENT TRIGGER IF EXISTS "cdc_cleaner_replica_identity_cdc_cleaner";
      CREATE EVENT TRIGGER "cdc_cleaner_replica_identity_cdc_cleaner" ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
        EXECUTE FUNCTION cdc_cleaner."replica_identity_cdc_cleaner"();
    EXCEPTION WHEN insufficient_privilege THEN
      -- A partition created later then has the default replica identity:
      -- its primary key, or none, and then the publication makes the
      -- application's UPDATE and DELETE on it fail.
      IF keyless IS NOT NULL THEN
        RAISE EXCEPTION 'cdc-cleaner: cannot install the event trigger that gives partitions created later REPLICA IDENTITY FULL (it needs a superuser), and partitioned table % has no primary key: the application''s UPDATE and DELETE on such a partition would fail (it would have no replica identity while the publication publishes them)', keyless
          USING ERRCODE = 'insufficient_privilege',
            HINT = 'run cdc-cleaner setup as a superuser, or add a primary key to the partitioned table first';
      END IF;
      RAISE WARNING 'cdc-cleaner: cannot install the event trigger (it needs a superuser), so partitions created later will not get REPLICA IDENTITY FULL automatically: their UPDATE and DELETE will not carry old file paths (recorded as old_values_missing) until you run cdc-cleaner setup again after creating them';
    END;
  END IF;
END
$cdc0$;

-- the publication covers exactly the watched tables (setup alters only a publication it created)
DO $cdc$
DECLARE owned boolean;
BEGIN
  SELECT (coalesce(obj_description(p.oid, 'pg_publication') LIKE 'managed by cdc-cleaner setup%', false)
    OR to_regprocedure('cdc_cleaner.' || quote_ident('replica_identity_' || p.pubname) || '()') IS NOT NULL) INTO owned
    FROM pg_publication p WHERE p.pubname = 'cdc_cleaner';
  IF NOT FOUND THEN
    CREATE PUBLICATION "cdc_cleaner" FOR TABLE ONLY "public"."gallery_photo" WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true);
  ELSIF owned THEN
    ALTER PUBLICATION "cdc_cleaner" SET TABLE ONLY "public"."gallery_photo";
    ALTER PUBLICATION "cdc_cleaner" SET (publish = 'insert, update, delete, truncate', publish_via_partition_root = true);
  ELSE
    RAISE EXCEPTION 'publication % exists and was not created by cdc-cleaner setup', 'cdc_cleaner'
      USING ERRCODE = 'duplicate_object',
        HINT = 'setup never changes what it did not create, and another consumer may use this publication: set postgres.publication to another name. If it is meant for cdc-cleaner alone, mark it (COMMENT ON PUBLICATION ... IS ''managed by cdc-cleaner setup'') and run setup again: it then covers exactly the watched tables.';
  END IF;
  COMMENT ON PUBLICATION "cdc_cleaner" IS 'managed by cdc-cleaner setup: it covers exactly the tables cdc-cleaner watches; cdc-cleaner teardown drops it';
END
$cdc$;

-- without a partitioned watched table, no event trigger: remove one an earlier setup installed
DO $cdc$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                  WHERE c.relkind = 'p' AND (n.nspname::text, c.relname::text) IN (('public', 'gallery_photo'))) THEN
    IF EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'cdc_cleaner_replica_identity_cdc_cleaner') THEN
      BEGIN
        DROP EVENT TRIGGER "cdc_cleaner_replica_identity_cdc_cleaner";
      EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'cdc-cleaner: the event trigger % is not needed (no watched table is partitioned), but only a superuser may drop it: DROP EVENT TRIGGER %', 'cdc_cleaner_replica_identity_cdc_cleaner', 'cdc_cleaner_replica_identity_cdc_cleaner';
      END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'cdc_cleaner_replica_identity_cdc_cleaner') THEN
      BEGIN
        DROP FUNCTION IF EXISTS cdc_cleaner."replica_identity_cdc_cleaner"();
      EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'cdc-cleaner: the function % is not needed, but only its owner may drop it', 'cdc_cleaner."replica_identity_cdc_cleaner"';
      END;
    END IF;
  END IF;
END
$cdc$;

-- the logical replication slot (pgoutput) the cleaner streams from; run this statement on its own, outside a transaction that has written
DO $cdc$
DECLARE s record; is_failover boolean;
BEGIN
  SELECT plugin, database INTO s FROM pg_replication_slots WHERE slot_name = 'cdc_cleaner';
  IF NOT FOUND THEN
    -- A slot nobody records would retain WAL while everything refuses it:
    -- make sure the record can be written before creating the slot, and
    -- drop the slot again if it cannot.
    IF to_regclass('cdc_cleaner.slots') IS NULL OR NOT has_table_privilege('cdc_cleaner.slots', 'INSERT') THEN
      RAISE EXCEPTION 'cannot record the slot in cdc_cleaner.slots (missing, or not writable by %), so it is not created', current_user
        USING HINT = 'apply migrations/0001_cdc_cleaner_schema.sql (cdc-cleaner setup does) first';
    END IF;
    IF true AND current_setting('server_version_num')::int >= 170000 THEN
      -- A failover slot: standbys with sync_replication_slots keep a copy,
      -- and a promoted one streams on where the cleaner was (17+).
      PERFORM pg_create_logical_replication_slot('cdc_cleaner', 'pgoutput', failover => true);
    ELSE
      PERFORM pg_create_logical_replication_slot('cdc_cleaner', 'pgoutput');
    END IF;
    BEGIN
      INSERT INTO cdc_cleaner.slots (slot_name, publication) VALUES ('cdc_cleaner', 'cdc_cleaner')
        ON CONFLICT (slot_name) DO UPDATE SET publication = EXCLUDED.publication, created_at = now(), adopted = false;
    EXCEPTION WHEN others THEN
      PERFORM pg_drop_replication_slot('cdc_cleaner');
      RAISE;
    END;
  ELSIF s.database IS DISTINCT FROM current_database() THEN
    RAISE EXCEPTION 'replication slot % belongs to database %, not %', 'cdc_cleaner', s.database, current_database()
      USING ERRCODE = 'duplicate_object',
        HINT = 'slot names are shared by every database of the server: set postgres.slot to another name';
  ELSIF s.plugin IS DISTINCT FROM 'pgoutput' THEN
    RAISE EXCEPTION 'replication slot % uses output plugin %, not pgoutput: it belongs to another consumer', 'cdc_cleaner', s.plugin
      USING ERRCODE = 'duplicate_object',
        HINT = 'set postgres.slot to another name';
  ELSIF EXISTS (SELECT 1 FROM cdc_cleaner.slots WHERE slot_name = 'cdc_cleaner') THEN
    UPDATE cdc_cleaner.slots SET publication = 'cdc_cleaner' WHERE slot_name = 'cdc_cleaner' AND publication IS DISTINCT FROM 'cdc_cleaner';
    IF true AND current_setting('server_version_num')::int >= 170000 THEN
      -- The column exists from 17 on: read it only there.
      EXECUTE 'SELECT failover FROM pg_replication_slots WHERE slot_name = $1' INTO is_failover USING 'cdc_cleaner';
      IF NOT is_failover THEN
        RAISE NOTICE 'cdc-cleaner: replication slot % is not a failover slot, so a promoted standby will not have it (postgres.failover_slot is on)', 'cdc_cleaner'
          USING HINT = format('make it one over a replication connection while the cleaner is stopped: psql "dbname=%s replication=database" -c "ALTER_REPLICATION_SLOT %s (FAILOVER true)" (README: Failover)', current_database(), 'cdc_cleaner');
      END IF;
    END IF;
  ELSE
    RAISE EXCEPTION 'replication slot % exists and was not created by cdc-cleaner setup', 'cdc_cleaner'
      USING ERRCODE = 'duplicate_object',
        HINT = 'another consumer may read it, and the cleaner would move it past changes that consumer has not read yet: set postgres.slot to another name. If it is this cleaner''s own slot (created by a cdc-cleaner version before the table cdc_cleaner.slots, by a setup that was interrupted, or by hand for it), record it with cdc-cleaner setup --adopt-slot.';
  END IF;
END
$cdc$;

