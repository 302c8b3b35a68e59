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
-- Apply as a role that owns the watched tables and has REPLICATION (the
-- event trigger needs a superuser; without one it is skipped with a warning
-- and `cdc-cleaner setup` must run again after partitions are created).
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

-- the publication covers exactly the watched tables
DO $cdc$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'cdc_cleaner') THEN
    CREATE PUBLICATION "cdc_cleaner" FOR TABLE ONLY "public"."gallery_photo" WITH (publish = 'update, delete, truncate', publish_via_partition_root = true);
  ELSE
    ALTER PUBLICATION "cdc_cleaner" SET TABLE ONLY "public"."gallery_photo";
    ALTER PUBLICATION "cdc_cleaner" SET (publish = 'update, delete, truncate', publish_via_partition_root = true);
  END IF;
END
$cdc$;

-- partitions created later get REPLICA IDENTITY FULL too: the function an event trigger calls
CREATE OR REPLACE FUNCTION cdc_cleaner."replica_identity_cdc_cleaner"() RETURNS event_trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $cdc$
DECLARE r regclass;
BEGIN
  FOR r IN SELECT t.relid FROM pg_publication_tables pt
           CROSS JOIN LATERAL pg_partition_tree(format('%I.%I', pt.schemaname, pt.tablename)::regclass) t
           JOIN pg_class c ON c.oid = t.relid
           WHERE pt.pubname = 'cdc_cleaner' AND c.relreplident <> 'f' AND c.relkind IN ('r', 'p')
  LOOP
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', r);
  END LOOP;
END
$cdc$;

-- the event trigger (superuser only; otherwise run setup again after creating partitions)
DO $cdc$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    DROP EVENT TRIGGER IF EXISTS "cdc_cleaner_replica_identity_cdc_cleaner";
    CREATE EVENT TRIGGER "cdc_cleaner_replica_identity_cdc_cleaner" ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
      EXECUTE FUNCTION cdc_cleaner."replica_identity_cdc_cleaner"();
  ELSE
    RAISE WARNING 'cdc-cleaner: not a superuser, so partitions created later will not get REPLICA IDENTITY FULL automatically; run cdc-cleaner setup again after creating partitions';
  END IF;
END
$cdc$;

-- the logical replication slot (pgoutput) the cleaner streams from; run this statement on its own, outside a transaction that has written
SELECT pg_create_logical_replication_slot('cdc_cleaner', 'pgoutput')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdc_cleaner');

