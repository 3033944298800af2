-- §12 operations and first contact: bulk reference data for carm_admin
-- (validation, all or nothing, one audit event per batch), the functions and
-- the role x function matrix as views from the C matrix, comments on every
-- object, id lookups that disclose nothing (§10), and the audit trail's
-- filters and names (§9).
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
-- This transcript changes actors between statements with session actors
-- (set_actor(..., false)), which are off by default (SPEC §10 rev. 1.2).
SET carm_deleg.allow_session_actor = on;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ops_admin') THEN
    CREATE ROLE regress_ops_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ops_gw') THEN
    CREATE ROLE regress_ops_gw NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ops_nobody') THEN
    CREATE ROLE regress_ops_nobody NOLOGIN;
  END IF;
END
$$;
SET client_min_messages = warning;   -- "already a member" when run twice
GRANT carm_admin TO regress_ops_admin;
GRANT carm_gateway TO regress_ops_gw;
RESET client_min_messages;

-- Shows the outcome of a statement: ok, or its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

-- 1. Bulk loads (§12), by a carm_admin member that is not a superuser ------
SET ROLE regress_ops_admin;
SELECT carm.add_businesses('{100000009,200000008,300000007}',
                           '{"Maple Imports"," Northern Brokers ","Cedar Imports"}',
                           '{IMPORTER,"CUSTOMS_BROKER, TRADE_CONSULTANT",IMPORTER}') AS businesses;
SELECT carm.add_program_accounts('{100000009RM0001,100000009RM0002,200000008RM0001,300000007RM0001}',
                                 '{Imports,Warehouse,NULL,NULL}') AS programs;
SELECT carm.register_users('{alice,dave,erin,olivia}', '{Alice,Dave,Erin,Olivia}',
                           '{alice@maple.example,NULL,NULL,NULL}') AS users;
SELECT carm.add_businesses('{}', '{}', '{}') AS empty_batch;
RESET ROLE;
SELECT bn9, legal_name, kinds FROM carm.business ORDER BY id;
SELECT p.bn15, p.name, b.bn9 FROM carm.program p JOIN carm.business b ON b.id = p.business_id ORDER BY p.id;
SELECT id, external_id, full_name, email FROM carm.app_user ORDER BY id;
-- §9: one audit event per batch
SELECT event, details FROM carm.audit_event ORDER BY id;

-- Refusals: the SQLSTATE of the one-row function, the first offending
-- element and its position, never more than 32 characters, nothing applied.
SET ROLE regress_ops_admin;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'bad check digit',     $$SELECT carm.add_businesses('{400000006,123456789}', '{A,B}', '{IMPORTER}')$$),
  (2, 'huge BN9 echoed',     $$SELECT carm.add_businesses(ARRAY[repeat('9', 100)], '{A}', '{IMPORTER}')$$),
  (3, 'NULL element',        $$SELECT carm.add_businesses('{400000006,NULL}', '{A,B}', '{IMPORTER}')$$),
  (4, 'blank name',          $$SELECT carm.add_businesses('{400000006}', '{"  "}', '{IMPORTER}')$$),
  (5, 'unknown kind',        $$SELECT carm.add_businesses('{400000006,500000005}', '{A,B}', '{IMPORTER,BANK}')$$),
  (6, 'empty kinds',         $$SELECT carm.add_businesses('{400000006}', '{A}', '{""}')$$),
  (7, 'twice in the batch',  $$SELECT carm.add_businesses('{400000006,500000005,400000006}', '{A,B,C}', '{IMPORTER}')$$),
  (8, 'already exists',      $$SELECT carm.add_businesses('{400000006,100000009}', '{A,B}', '{IMPORTER}')$$),
  (9, 'lengths differ',      $$SELECT carm.add_businesses('{400000006,500000005}', '{A}', '{IMPORTER}')$$),
  (10, 'NULL array',         $$SELECT carm.add_businesses(NULL, '{A}', '{IMPORTER}')$$),
  (11, 'NULL kinds',         $$SELECT carm.add_businesses('{400000006}', '{A}', NULL)$$),
  (12, 'two dimensions',     $$SELECT carm.add_businesses('{{400000006}}', '{{A}}', '{IMPORTER}')$$),
  (13, 'bad BN15',           $$SELECT carm.add_program_accounts('{100000009RM0003,100000009XX0003}')$$),
  (14, 'unknown business',   $$SELECT carm.add_program_accounts('{100000009RM0003,400000006RM0001}')$$),
  (15, 'program twice',      $$SELECT carm.add_program_accounts('{100000009RM0003,100000009RM0003}')$$),
  (16, 'program exists',     $$SELECT carm.add_program_accounts('{100000009RM0003,100000009RM0001}')$$),
  (17, 'name too long',      $$SELECT carm.add_program_accounts('{100000009RM0003}', ARRAY[repeat('n', 600)])$$),
  (18, 'names length',       $$SELECT carm.add_program_accounts('{100000009RM0003}', '{a,b}')$$),
  (19, 'blank external id',  $$SELECT carm.register_users('{bob," "}', '{Bob,X}')$$),
  (20, 'user exists',        $$SELECT carm.register_users('{bob," alice "}', '{Bob,X}')$$),
  (21, 'user twice',         $$SELECT carm.register_users('{bob,bob}', '{Bob,X}')$$),
  (22, 'bad email',          $$SELECT carm.register_users('{bob}', '{Bob}', '{not-an-email}')$$),
  (23, 'blank full name',    $$SELECT carm.register_users('{bob}', '{""}')$$)
) AS t(n, what, stmt) ORDER BY n;
RESET ROLE;
SELECT (SELECT count(*) FROM carm.business) AS businesses, (SELECT count(*) FROM carm.program) AS programs,
       (SELECT count(*) FROM carm.app_user) AS users, (SELECT count(*) FROM carm.audit_event) AS events;
-- not for the gateway, nor anyone else (§2)
SET ROLE regress_ops_gw;
SELECT pg_temp.try($$SELECT carm.add_businesses('{400000006}', '{A}', '{IMPORTER}')$$) AS gateway_bulk;
SELECT pg_temp.try($$SELECT carm.register_users('{bob}', '{Bob}')$$) AS gateway_bulk_users;
RESET ROLE;

-- 2. Discovery (§12): the views come from the C matrix --------------------
SET ROLE regress_ops_nobody;
SELECT function_no, function, scope FROM carm.functions ORDER BY function_no;
SELECT role, kind FROM carm.roles ORDER BY role_no;
-- the §3.2 table, row by row
SELECT function, string_agg(role || '=' || max_level, ' ' ORDER BY role_no) AS levels
FROM carm.role_permissions GROUP BY function_no, function ORDER BY function_no;
SELECT permissions FROM carm.role_permissions WHERE role = 'EDITOR' AND function = 'payments';
RESET ROLE;

-- 3. Ids back to names (§10: a hidden business answers like an unknown one)
SET ROLE regress_ops_gw;
SELECT carm.user_id('alice') AS alice, carm.user_id('dave') AS dave;
SELECT pg_temp.try($$SELECT carm.user_id('nobody-at-all')$$) AS unknown_user,
       pg_temp.try($$SELECT carm.user_id('  ')$$) AS blank_user;
BEGIN;
SELECT carm.set_actor('alice');
SELECT carm.register_business('100000009', '100000009RM0001');
SELECT carm.set_actor('dave');
SELECT carm.register_business('200000008', '200000008RM0001');
SELECT carm.request_relationship('200000008', '100000009', 'Customs clearance') AS rel \gset
SELECT carm.set_actor('alice');
SELECT carm.approve_relationship(:rel, 'PROGRAM', '{100000009RM0001}');
SELECT carm.set_actor('olivia');
SELECT carm.register_business('300000007', '300000007RM0001');
COMMIT;
RESET ROLE;
INSERT INTO carm.employee (business_id, user_id, role) VALUES (2, 3, 'EDITOR');   -- erin at Northern
-- one authority (§3.2): the view answers what the check answers, for the
-- EDITOR erin and the BAM alice: the maximum level is granted, the next is not
SELECT u.who, r.function, r.max_level
FROM (VALUES ('erin', 3, 'EDITOR', '200000008RM0001'), ('alice', 1, 'BAM', '100000009RM0001')) u(who, id, role, bn15)
JOIN carm.role_permissions r ON r.role = u.role
WHERE (r.max_level <> 'none' AND NOT carm.user_has_access(u.id, u.bn15, r.function || '.' || r.max_level))
   OR (r.max_level <> 'manage'
       AND carm.user_has_access(u.id, u.bn15, r.function || '.' ||
             (ARRAY['view','edit','manage'])[array_position(ARRAY['none','view','edit','manage'], r.max_level)]));
SET ROLE regress_ops_gw;
CREATE TEMP TABLE ids AS
SELECT ARRAY[carm.business_id('100000009'), carm.business_id('200000008'), carm.business_id('300000007'), 999999] AS b,
       ARRAY[carm.program_id('100000009RM0001'), carm.program_id('100000009RM0002'),
             carm.program_id('200000008RM0001'), carm.program_id('300000007RM0001'), 999999] AS p;
CREATE FUNCTION pg_temp.names(who text) RETURNS TABLE (actor text, businesses text, programs text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(who, false);
  RETURN QUERY SELECT who,
    (SELECT string_agg(b.bn9 || ' ' || b.legal_name, ', ' ORDER BY b.id) FROM carm.businesses((SELECT i.b FROM ids i)) b),
    (SELECT string_agg(p.bn15, ', ' ORDER BY p.id) FROM carm.programs((SELECT i.p FROM ids i)) p);
END
$$;
SELECT n.* FROM unnest(ARRAY['alice', 'dave', 'erin', 'olivia']) w, pg_temp.names(w) n;
-- an outsider: Maple's id answers exactly like an id that does not exist
SELECT carm.set_actor('olivia', false);
SELECT (SELECT count(*) FROM carm.businesses(ARRAY[carm.business_id('100000009')])) AS hidden,
       (SELECT count(*) FROM carm.businesses(ARRAY[999999::bigint])) AS unknown,
       (SELECT count(*) FROM carm.programs(ARRAY[carm.program_id('100000009RM0001')])) AS hidden_program;
SELECT carm.reset_actor();
SELECT pg_temp.try($$SELECT * FROM carm.businesses('{1}')$$) AS no_actor,
       pg_temp.try($$SELECT * FROM carm.programs(NULL)$$) AS null_ids;
RESET ROLE;
SET ROLE regress_ops_nobody;
SELECT pg_temp.try($$SELECT carm.user_id('alice')$$) AS not_gateway;
RESET ROLE;
DROP TABLE ids;
DROP FUNCTION pg_temp.names(text);

-- 4. Audit (§9): filters, BN9s and external ids ----------------------------
SELECT event, business, other_business, actor, target_user FROM carm.audit_events()
WHERE event LIKE 'relationship%' OR event LIKE 'business_reg%' ORDER BY id;
SELECT count(*) AS relationship_events
FROM carm.audit_events(events => '{relationship_requested,relationship_approved}');
SELECT count(*) AS future FROM carm.audit_events(since => now() + interval '1 hour');
SELECT count(*) = (SELECT count(*) FROM carm.audit_event) AS all_before_tomorrow
FROM carm.audit_events(until => now() + interval '1 day');
SELECT pg_temp.try($$SELECT * FROM carm.audit_events(since => now(), until => now() - interval '1 day')$$) AS inverted_range;
SET ROLE regress_ops_gw;
SELECT carm.set_actor('alice', false);
SELECT event, business, other_business, actor FROM carm.audit_events('100000009', events => '{relationship_approved}');
SELECT pg_temp.try($$SELECT * FROM carm.audit_events('300000007')$$) AS not_her_business,
       pg_temp.try($$SELECT * FROM carm.audit_events()$$) AS everything;
SELECT carm.reset_actor();
RESET ROLE;

-- 5. Every table, view and function has a comment, in both schemas (§12) --
SELECT c.relname AS uncommented_relation FROM pg_class c
WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind IN ('r', 'v', 'p')
  AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.oid::regprocedure AS uncommented_function FROM pg_proc p
WHERE p.pronamespace IN ('carm'::regnamespace, 'carm_internal'::regnamespace)
  AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT n.nspname FROM pg_namespace n WHERE n.nspname IN ('carm', 'carm_internal')
  AND obj_description(n.oid, 'pg_namespace') IS NULL;

-- clean up, so that the test can run again on the same cluster
SET client_min_messages = warning;
DROP EXTENSION carm_deleg CASCADE;
RESET client_min_messages;
DROP ROLE regress_ops_admin, regress_ops_gw, regress_ops_nobody;
