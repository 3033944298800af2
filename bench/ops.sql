-- Bench: group and relationship operations at the §11 scale, through the API:
-- a provider with 500 employees and 10,000 clients; add all 10,000 clients
-- to a group whose 500 employees get access at commit, delete that group,
-- then expire the 10,000 relationships with carm.run_maintenance().
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- Milliseconds of one execution of q (for statements that change state).
CREATE OR REPLACE FUNCTION bench.time_once(q text) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE q;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

-- Setup through the bulk path: one provider, its BAM and 500 employees,
-- 10,000 importers with one program each, an active relationship with each.
SELECT max(id) AS b0 FROM carm.business \gset
SELECT max(id) AS u0 FROM carm.app_user \gset
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT bench.bn9(90000000 + i), 'Ops business ' || i,
       CASE WHEN i = 0 THEN '{CUSTOMS_BROKER}'::text[] ELSE '{IMPORTER}' END
FROM generate_series(0, 10000) i;
INSERT INTO carm.program (business_id, bn15)
SELECT b.id, b.bn9 || 'RM0001' FROM carm.business b WHERE b.id > :b0 + 1;
INSERT INTO carm.app_user (external_id, full_name)
SELECT 'ops' || i, 'Ops user ' || i FROM generate_series(0, 500) i;
INSERT INTO carm.employee (business_id, user_id, role)
SELECT :b0 + 1, u.id, CASE WHEN u.id = :u0 + 1 THEN 'BAM' ELSE 'EDITOR' END
FROM carm.app_user u WHERE u.id > :u0;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, comment)
SELECT :b0 + 1, b.id, 'active', 'BUSINESS', true, 'ops' FROM carm.business b WHERE b.id > :b0 + 1;
COMMIT;
UPDATE carm.business SET legal_name = legal_name WHERE id = :b0 + 1;   -- invalidate caches
ANALYZE carm.business, carm.program, carm.app_user, carm.employee, carm.relationship;

SELECT bn9 AS ops_provider FROM carm.business WHERE id = :b0 + 1 \gset
SELECT bn15 AS ops_program FROM carm.program WHERE business_id = :b0 + 2 \gset
-- session actor for this script's calls, off by default (SPEC §10 rev. 1.2)
SET carm_deleg.allow_session_actor = on;
SELECT carm.set_actor(:u0 + 1, false);
SELECT carm.create_client_group(:'ops_provider', 'ops') AS ops_group \gset
INSERT INTO bench.result VALUES
 ('ops: assign 500 employees to a group',
  bench.time_once(format('SELECT carm.assign_group_employees(%s, ARRAY(SELECT id FROM carm.app_user WHERE id > %s), ''PVIEWER'')',
                         :ops_group, :u0 + 1)), 'G4, one row per employee'),
 ('ops: add 10,000 clients to a group of 500 employees',
  bench.time_once(format('SELECT carm.add_group_clients(%s, ARRAY(SELECT bn9 FROM carm.business WHERE id > %s))',
                         :ops_group, :b0 + 1)), 'G6, one row per client');
SELECT carm.user_has_access(:u0 + 2, :'ops_program', 'payments.view') AS employee_sees_client_after_add \gset
INSERT INTO bench.result VALUES
 ('ops: delete that group', bench.time_once(format('SELECT carm.delete_client_group(%s)', :ops_group)), 'G8');
SELECT carm.user_has_access(:u0 + 2, :'ops_program', 'payments.view') AS employee_sees_client_after_delete \gset
SELECT carm.reset_actor();
UPDATE carm.relationship SET expires_at = now() - interval '1 second' WHERE provider_id = :b0 + 1;
INSERT INTO bench.result VALUES
 ('ops: expire 10,000 relationships (run_maintenance)',
  bench.time_once('SELECT carm.run_maintenance()'), 'R9 cascade, audit, notifications');
SELECT count(*) AS expired FROM carm.relationship WHERE provider_id = :b0 + 1 AND status = 'expired' \gset

\echo
\echo carm_deleg benchmark: operations
SELECT :'employee_sees_client_after_add' AS access_after_add, :'employee_sees_client_after_delete' AS access_after_delete,
       :expired AS relationships_expired;
SELECT name, round(ms::numeric, 1) AS ms, CASE WHEN ms < 1000 THEN 'yes' ELSE 'NO' END AS "under 1 s", note
FROM bench.result WHERE name LIKE 'ops:%' ORDER BY name;
