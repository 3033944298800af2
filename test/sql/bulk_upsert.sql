-- §12 bulk loads with an upsert mode (rev. 1.2): on_conflict => 'update' or
-- 'skip' for periodic reference-data refreshes, 'error' (the default, the
-- shorter signatures) as before.  Counts (inserted, updated, skipped), one
-- audit event per batch, bad modes (22004, 22023, nothing applied), and the
-- decisions (E1-E13, R1, R5-R10) exact after a refresh changes a business's
-- kinds.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
DROP SCHEMA IF EXISTS regress_upsert CASCADE;
CREATE SCHEMA regress_upsert;
GRANT USAGE ON SCHEMA regress_upsert TO PUBLIC;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ups_admin') THEN
    CREATE ROLE regress_ups_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ups_gw') THEN
    CREATE ROLE regress_ups_gw NOLOGIN;
  END IF;
END
$$;
GRANT carm_admin TO regress_ups_admin;
GRANT carm_gateway TO regress_ups_gw;
RESET client_min_messages;
CREATE FUNCTION regress_upsert.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN others THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
CREATE FUNCTION pg_temp.events() RETURNS TABLE (event text, details jsonb) LANGUAGE sql AS $$
  SELECT event, details FROM carm.audit_event
  WHERE event IN ('businesses_added', 'program_accounts_added', 'users_registered') ORDER BY id
$$;
SET ROLE regress_ups_admin;

-- 1. A first load, in the upsert modes: everything is new ---------------------
SELECT * FROM carm.add_businesses('{100000009,200000008,300000007}',
                                  '{Broker One,Client A,Client B}',
                                  '{CUSTOMS_BROKER,IMPORTER,IMPORTER}', on_conflict => 'update');
SELECT * FROM carm.add_program_accounts('{200000008RM0001,200000008RM0002,300000007RM0001}',
                                        '{Imports,NULL,Imports B}', 'skip');
SELECT * FROM carm.register_users('{pbam,ed,cbam}', '{Pat Bam,Ed Itor,Cy Bam}',
                                  '{pat@broker.example,NULL,cy@a.example}', on_conflict => 'update');

-- 2. Bad modes: 22004, 22023; nothing is loaded, no event --------------------
SELECT n, regress_upsert.try(stmt) AS outcome FROM (VALUES
  (1, $$SELECT carm.add_businesses('{400000006}', '{D}', '{IMPORTER}', NULL)$$),
  (2, $$SELECT carm.add_businesses('{400000006}', '{D}', '{IMPORTER}', 'upsert')$$),
  (3, $$SELECT carm.add_program_accounts('{200000008RM0003}', NULL, NULL)$$),
  (4, $$SELECT carm.add_program_accounts('{200000008RM0003}', NULL, 'UPDATE')$$),
  (5, $$SELECT carm.register_users('{zed}', '{Zed}', NULL, NULL)$$),
  (6, $$SELECT carm.register_users('{zed}', '{Zed}', NULL, 'replace')$$),
  -- the mode is checked before the arrays
  (7, $$SELECT carm.register_users(NULL, NULL, NULL, 'merge')$$)
) AS t(n, stmt) ORDER BY n;
RESET ROLE;
SELECT count(*) AS businesses FROM carm.business WHERE bn9 = '400000006';
SELECT count(*) AS programs FROM carm.program WHERE bn15 = '200000008RM0003';
SELECT count(*) AS users FROM carm.app_user WHERE external_id = 'zed';
SELECT count(*) AS events FROM pg_temp.events();   -- the three of section 1 only
SET ROLE regress_ups_admin;

-- 3. The default keeps today's behaviour: a stored key is an error (23505) ---
SELECT n, regress_upsert.try(stmt) AS outcome FROM (VALUES
  (11, $$SELECT carm.add_businesses('{400000006,200000008}', '{D,A}', '{IMPORTER}')$$),
  (12, $$SELECT carm.add_businesses('{400000006,200000008}', '{D,A}', '{IMPORTER}', 'error')$$),
  (13, $$SELECT carm.add_program_accounts('{200000008RM0003,200000008RM0001}')$$),
  (14, $$SELECT carm.register_users('{zed,ed}', '{Zed,Ed}')$$),
  -- a key twice in one batch is an error in every mode
  (15, $$SELECT carm.add_businesses('{400000006,400000006}', '{D,D}', '{IMPORTER}', 'update')$$),
  (16, $$SELECT carm.register_users('{zed, zed}', '{Zed,Zed}', NULL, 'skip')$$),
  -- every element is still validated, stored or not
  (17, $$SELECT carm.add_businesses('{200000008,400000007}', '{A,D}', '{IMPORTER}', 'skip')$$),
  (18, $$SELECT carm.add_program_accounts('{200000008RM0001,900000001RM0001}', NULL, 'update')$$)
) AS t(n, stmt) ORDER BY n;
RESET ROLE;
SELECT count(*) AS businesses FROM carm.business WHERE bn9 = '400000006';
SELECT count(*) AS users FROM carm.app_user WHERE external_id = 'zed';
SET ROLE regress_ups_admin;

-- 4. skip: stored rows are left as they are ----------------------------------
SELECT * FROM carm.add_businesses('{200000008,400000006}', '{Renamed A,Client D}', '{IMPORTER}', 'skip');
SELECT * FROM carm.add_program_accounts('{200000008RM0001,200000008RM0003}', '{Renamed,Third}', 'skip');
SELECT * FROM carm.register_users('{ed,zed}', '{Renamed Ed,Zed}', NULL, 'skip');
RESET ROLE;
SELECT bn9, legal_name, kinds FROM carm.business ORDER BY bn9;
SELECT bn15, name FROM carm.program ORDER BY bn15;
SELECT external_id, full_name, email FROM carm.app_user ORDER BY external_id;

-- 5. update: names, kinds, emails change; ids and keys never -----------------
CREATE TEMP TABLE ids_before AS
  SELECT 'b' AS t, bn9 AS k, id, NULL::bigint AS business_id FROM carm.business
  UNION ALL SELECT 'p', bn15, id, business_id FROM carm.program
  UNION ALL SELECT 'u', external_id, id, NULL FROM carm.app_user;
SET ROLE regress_ups_admin;
-- Client A unchanged (skipped), Client B renamed; Client D gains a kind;
-- a program renamed, one with no name given keeps its name; Ed gets an email,
-- Pat keeps hers (none given), Cy renamed; ' cbam ' is the trimmed key cbam
SELECT * FROM carm.add_businesses('{200000008,300000007,400000006,500000005}',
                                  '{Client A,Client B Ltd,Client D,Client E}',
                                  '{IMPORTER,IMPORTER,"IMPORTER,TRADE_CONSULTANT",IMPORTER}', 'update');
SELECT * FROM carm.add_program_accounts('{200000008RM0001,200000008RM0002,300000007RM0001,500000005RM0001}',
                                        '{Imports,Second,NULL,E}', 'update');
SELECT * FROM carm.register_users('{pbam,ed," cbam ",zed,amy}', '{Pat Bam,Ed Itor,Cy Bam-Roy,Zed,Amy}',
                                  '{NULL,ed@broker.example,NULL,NULL,NULL}', 'update');
RESET ROLE;
SELECT bn9, legal_name, kinds FROM carm.business ORDER BY bn9;
SELECT bn15, name FROM carm.program ORDER BY bn15;
SELECT external_id, full_name, email, active FROM carm.app_user ORDER BY external_id;
SELECT count(*) AS ids_changed
FROM ids_before b
LEFT JOIN (SELECT 'b' AS t, bn9 AS k, id, NULL::bigint AS business_id FROM carm.business
           UNION ALL SELECT 'p', bn15, id, business_id FROM carm.program
           UNION ALL SELECT 'u', external_id, id, NULL FROM carm.app_user) a USING (t, k)
WHERE a.id IS DISTINCT FROM b.id OR a.business_id IS DISTINCT FROM b.business_id;

-- 6. One audit event per batch, with the counts ------------------------------
SELECT event, details FROM pg_temp.events();

-- 7. A refresh that changes a business's kinds keeps every decision exact ----
-- Broker One (CUSTOMS_BROKER) has an active relationship with Client A;
-- Pat is its BAM, Ed an editor assigned to Client A (R7).  Its
-- kinds decide only whether it may request a relationship (R1) or keep
-- groups (G1) from now on; grants already made stay (no cached decision
-- reads kinds, so no invalidation is needed).
SELECT id AS broker FROM carm.business WHERE bn9 = '100000009' \gset
SELECT id AS ca FROM carm.business WHERE bn9 = '200000008' \gset
SELECT id AS pbam FROM carm.app_user WHERE external_id = 'pbam' \gset
SELECT id AS ed FROM carm.app_user WHERE external_id = 'ed' \gset
SELECT id AS cbam FROM carm.app_user WHERE external_id = 'cbam' \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES
  (:broker, :pbam, 'BAM'), (:broker, :ed, 'EDITOR'), (:ca, :cbam, 'BAM');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment)
VALUES (:broker, :ca, 'active', 'BUSINESS', 'customs') RETURNING id AS rel \gset
INSERT INTO carm.client_assignment (relationship_id, user_id, role) VALUES (:rel, :ed, 'PEDITOR');
-- every user x target x permission, through the cached check
CREATE FUNCTION regress_upsert.decisions() RETURNS TABLE (u text, t text, p text, d boolean)
LANGUAGE sql AS $$
  SELECT a.external_id, x.t, f.p, carm.user_has_access(a.id, x.t, f.p)
  FROM carm.app_user a,
       (SELECT bn9 FROM carm.business UNION ALL SELECT bn15 FROM carm.program) x(t),
       unnest('{payments.view,payments.edit,employee_access.manage,relationships.manage}'::text[]) f(p)
$$;
CREATE TABLE regress_upsert.before_refresh AS SELECT * FROM regress_upsert.decisions();   -- warms the stores
SELECT count(*) FILTER (WHERE d) AS granted, count(*) AS decisions FROM regress_upsert.before_refresh;
-- the refresh: Broker One is now an importer only
SET ROLE regress_ups_admin;
SELECT * FROM carm.add_businesses('{100000009,200000008}', '{Broker One,Client A}', '{IMPORTER}', 'update');
RESET ROLE;
SELECT kinds FROM carm.business WHERE bn9 = '100000009';
-- the same decisions, in this session (warm stores) ...
SELECT count(*) AS changed_in_session
FROM regress_upsert.before_refresh b JOIN regress_upsert.decisions() a USING (u, t, p) WHERE a.d IS DISTINCT FROM b.d;
-- ... and computed afresh, in a new session (no store at all)
\c
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT count(*) AS changed_fresh
FROM regress_upsert.decisions() a JOIN regress_upsert.before_refresh b USING (u, t, p) WHERE a.d IS DISTINCT FROM b.d;
-- Pat, its BAM, still reads Client A's programs through the relationship;
-- a new relationship request is now refused (R1), as after set_business_kinds
SET ROLE regress_ups_gw;
BEGIN;
SELECT carm.set_actor('pbam');
SELECT carm.has_access('200000008RM0001', 'payments.view') AS pbam_reads_client_a;
SELECT regress_upsert.try($$SELECT carm.request_relationship('100000009', '300000007', 'more')$$) AS request;
COMMIT;
RESET ROLE;

SET client_min_messages = warning;
DROP SCHEMA regress_upsert CASCADE;
RESET client_min_messages;
