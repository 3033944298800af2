-- Security and reliability hardening of the API (SPEC rev. 1.1):
--   §2   a deactivated actor is refused (42501) by every actor-facing function,
--        listings and audit included
--   §10  run_maintenance(as_of) refuses a future as_of (22023, R10)
--   R2   a second request for a pair with a pending, rejected or active
--        relationship is 23505 (1.0 raised 22004 for an active one)
--   §10  no disclosure through errors: an actor with no association to a
--        request, relationship, group or user gets P0002 and the same message
--        for an id that exists as for one that does not; an associated actor
--        still gets 42501; no message echoes more than 32 characters of an
--        argument
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
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_hard_app') THEN
    CREATE ROLE regress_hard_app NOLOGIN;
  END IF;
END
$$;
GRANT carm_gateway TO regress_hard_app;

-- try(stmt, id): ok, or the SQLSTATE and message, with the id written <id>
-- so that the answers for two ids can be compared.
CREATE FUNCTION pg_temp.try(stmt text, id bigint DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || CASE WHEN id IS NULL THEN SQLERRM
                                 ELSE regexp_replace(SQLERRM, '\m' || id || '\M', '<id>', 'g') END;
END
$$;
CREATE FUNCTION pg_temp.uid(ext text) RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT id FROM carm.app_user WHERE external_id = ext
$$;
CREATE FUNCTION pg_temp.act(ext text) RETURNS void LANGUAGE sql AS $$
  SELECT carm.set_actor(ext, is_local => false)
$$;

-- Acme (importer) and Northern (broker); Cedar (importer) knows neither.
SELECT carm.add_business('123456782', 'Acme Imports', '{IMPORTER}') AS acme,
       carm.add_business('111111118', 'Northern Brokers', '{CUSTOMS_BROKER}') AS northern,
       carm.add_business('100000009', 'Cedar Imports', '{IMPORTER}') AS cedar \gset
SELECT count(carm.add_program_account(p)) AS programs
FROM unnest(ARRAY['123456782RM0001', '111111118RM0001', '100000009RM0001']) p;
SELECT count(carm.register_user(u, initcap(u))) AS users
FROM unnest(ARRAY['alice', 'ed', 'olga', 'bob', 'bea', 'carl', 'rita']) u;
INSERT INTO carm.employee (business_id, user_id, role)
VALUES (:acme, pg_temp.uid('alice'), 'BAM'), (:acme, pg_temp.uid('ed'), 'EDITOR'),
       (:acme, pg_temp.uid('olga'), 'BAM'),
       (:northern, pg_temp.uid('bob'), 'BAM'), (:northern, pg_temp.uid('bea'), 'EDITOR'),
       (:cedar, pg_temp.uid('carl'), 'BAM');

SET ROLE regress_hard_app;

-- R2: pending, rejected and active relationships all block a second request
-- with 23505.
SELECT pg_temp.act('bob');
SELECT carm.request_relationship('111111118', '123456782', 'Customs clearance') AS rel \gset
SELECT pg_temp.try($$SELECT carm.request_relationship('111111118', '123456782', 'again')$$) AS r2_pending;
SELECT pg_temp.act('alice');
SELECT carm.reject_relationship(:rel, 'Not now');
SELECT pg_temp.act('bob');
SELECT pg_temp.try($$SELECT carm.request_relationship('111111118', '123456782', 'again')$$) AS r2_rejected;
SELECT carm.cancel_relationship_request(:rel);
SELECT carm.request_relationship('111111118', '123456782', 'Customs clearance, take two') AS rel \gset
SELECT pg_temp.act('alice');
SELECT carm.approve_relationship(:rel, 'BUSINESS');
SELECT pg_temp.act('bob');
SELECT pg_temp.try($$SELECT carm.request_relationship('111111118', '123456782', 'again')$$) AS r2_active;
SELECT carm.create_client_group('111111118', 'Importers of the east', '{123456782}') AS grp \gset

-- Rita asks Acme for access: a request only Acme's people and Rita know of.
SELECT pg_temp.act('rita');
SELECT carm.request_employee_access('123456782', 'I work in the customs office') AS req \gset

-- §10: Carl (Cedar's BAM) has no association with the request, the
-- relationship, the group or the users: for the existing id and for an
-- unknown one he gets P0002 and the same message.
SELECT pg_temp.act('carl');
SELECT what, pg_temp.try(format(stmt, :req), :req) AS existing,
       pg_temp.try(format(stmt, 987654), 987654) AS unknown
FROM (VALUES
  (1, 'approve_employee_access', $$SELECT carm.approve_employee_access(%s, 'VIEWER')$$),
  (2, 'reject_employee_access', $$SELECT carm.reject_employee_access(%s, 'no')$$),
  (3, 'withdraw_employee_access_request', $$SELECT carm.withdraw_employee_access_request(%s)$$)
) AS t(n, what, stmt) ORDER BY n;
SELECT what, pg_temp.try(format(stmt, :rel), :rel) AS existing,
       pg_temp.try(format(stmt, 987654), 987654) AS unknown
FROM (VALUES
  (1, 'cancel_relationship_request', $$SELECT carm.cancel_relationship_request(%s)$$),
  (2, 'reject_relationship', $$SELECT carm.reject_relationship(%s, 'no')$$),
  (3, 'approve_relationship', $$SELECT carm.approve_relationship(%s, 'BUSINESS')$$),
  (4, 'update_relationship', $$SELECT carm.update_relationship(%s, 'BUSINESS', NULL, false, false, NULL)$$),
  (5, 'end_relationship', $$SELECT carm.end_relationship(%s)$$)
) AS t(n, what, stmt) ORDER BY n;
SELECT what, pg_temp.try(format(stmt, :grp), :grp) AS existing,
       pg_temp.try(format(stmt, 987654), 987654) AS unknown
FROM (VALUES
  (1, 'add_group_clients', $$SELECT carm.add_group_clients(%s, '{100000009}')$$),
  (2, 'remove_group_clients', $$SELECT carm.remove_group_clients(%s, '{123456782}')$$),
  (3, 'assign_group_employees', $$SELECT carm.assign_group_employees(%s, '{1}', 'PVIEWER')$$),
  (4, 'unassign_group_employees', $$SELECT carm.unassign_group_employees(%s, '{1}')$$),
  (5, 'delete_client_group', $$SELECT carm.delete_client_group(%s)$$),
  (6, 'deferred delete_client_group', $$SELECT carm.delete_client_group(%s, deferred => true)$$),
  (7, 'group_clients', $$SELECT carm.group_clients(%s)$$),
  (8, 'group_employees', $$SELECT carm.group_employees(%s)$$)
) AS t(n, what, stmt) ORDER BY n;

-- ... and user ids: a user who is no employee of the business is answered
-- like an unknown id, whoever asks (here the managers themselves).
SELECT pg_temp.act('alice');
SELECT what, pg_temp.try(format(stmt, pg_temp.uid('carl')), pg_temp.uid('carl')) AS existing,
       pg_temp.try(format(stmt, 987654), 987654) AS unknown
FROM (VALUES
  (1, 'set_employee_access', $$SELECT carm.set_employee_access('123456782', %s, 'VIEWER')$$),
  (2, 'remove_employee', $$SELECT carm.remove_employee('123456782', %s)$$)
) AS t(n, what, stmt) ORDER BY n;
SELECT pg_temp.act('bob');
SELECT what, pg_temp.try(format(stmt, pg_temp.uid('carl')), pg_temp.uid('carl')) AS existing,
       pg_temp.try(format(stmt, 987654), 987654) AS unknown
FROM (VALUES
  (1, 'assign_client_access', $$SELECT carm.assign_client_access('111111118', '123456782', %s, 'PVIEWER')$$),
  (2, 'revoke_client_access', $$SELECT carm.revoke_client_access('111111118', '123456782', %s)$$),
  (3, 'assign_group_employees', format($$SELECT carm.assign_group_employees(%s, '{%%s}', 'PVIEWER')$$, :grp))
) AS t(n, what, stmt) ORDER BY n;

-- §10: actors associated with the object's business still learn why (42501).
SELECT pg_temp.act('ed');        -- Acme's editor
SELECT pg_temp.try(format('SELECT carm.approve_employee_access(%s, %L)', :req, 'VIEWER')) AS editor_approves,
       pg_temp.try(format('SELECT carm.reject_relationship(%s, %L)', :rel, 'no')) AS editor_rejects,
       pg_temp.try(format('SELECT carm.end_relationship(%s)', :rel)) AS editor_ends;
SELECT pg_temp.act('bea');       -- Northern's editor
SELECT pg_temp.try(format('SELECT carm.delete_client_group(%s)', :grp)) AS editor_deletes_group,
       pg_temp.try(format('SELECT carm.group_clients(%s)', :grp)) AS editor_lists_group,
       pg_temp.try(format('SELECT carm.cancel_relationship_request(%s)', :rel)) AS editor_cancels;

-- §10: at most 32 characters of an argument in a message.
SELECT pg_temp.act('bob');
SELECT pg_temp.try(format('SELECT carm.create_client_group(%L, %L)', '111111118',
                          'Importers of the east' || repeat(' and west', 15))) AS long_name_ok;
SELECT pg_temp.try(format('SELECT carm.create_client_group(%L, %L)', '111111118',
                          'IMPORTERS of the east' || repeat(' and west', 15))) AS long_name_taken;
SELECT pg_temp.act('alice');
SELECT pg_temp.try(format('SELECT carm.update_relationship(%s, %L, NULL, false, false, NULL)', :rel,
                          repeat('BUSINESS', 20))) AS long_type;

-- §2: a deactivated actor is refused by every actor-facing function,
-- listings and audit included, with 28000 (§10 rev. 1.2: an acting-user
-- problem, not a refusal nor an unknown object).  Olga is a BAM of Acme,
-- the session's actor, deactivated after set_actor().
SELECT pg_temp.act('olga');
RESET ROLE;
SELECT carm.deactivate_user(pg_temp.uid('olga'));
SET ROLE regress_hard_app;
SELECT what, pg_temp.try(stmt) AS deactivated
FROM (VALUES
  (1, 'audit_events', $$SELECT * FROM carm.audit_events('123456782')$$),
  (2, 'my_notifications', $$SELECT * FROM carm.my_notifications()$$),
  (3, 'my_access_requests', $$SELECT * FROM carm.my_access_requests()$$),
  (4, 'my_businesses', $$SELECT * FROM carm.my_businesses()$$),
  (5, 'employees', $$SELECT * FROM carm.employees('123456782')$$),
  (6, 'employee_access_requests', $$SELECT * FROM carm.employee_access_requests('123456782')$$),
  (7, 'relationships', $$SELECT * FROM carm.relationships('123456782')$$),
  (8, 'client_access', $$SELECT * FROM carm.client_access('111111118', '123456782')$$),
  (9, 'reject_relationship', format($$SELECT carm.reject_relationship(%s, 'no')$$, :rel)),
  (10, 'end_relationship', format($$SELECT carm.end_relationship(%s)$$, :rel)),
  (11, 'request_relationship', $$SELECT carm.request_relationship('111111118', '123456782', 'x')$$),
  (12, 'approve_employee_access', format($$SELECT carm.approve_employee_access(%s, 'VIEWER')$$, :req)),
  (13, 'set_employee_access', $$SELECT carm.set_employee_access('123456782', 2, 'VIEWER')$$),
  (14, 'client_groups', $$SELECT * FROM carm.client_groups('111111118')$$),
  (15, 'group_clients', format($$SELECT * FROM carm.group_clients(%s)$$, :grp)),
  (16, 'add_group_clients', format($$SELECT carm.add_group_clients(%s, '{100000009}')$$, :grp))
) AS t(n, what, stmt) ORDER BY n;
-- set_actor() refuses her at once, with the same code
SELECT pg_temp.try($$SELECT pg_temp.act('olga')$$) AS set_deactivated;
-- the same calls for an active BAM answer
SELECT pg_temp.act('alice');
SELECT count(*) > 0 AS alice_reads_audit FROM carm.audit_events('123456782');
SELECT count(*) AS alice_businesses FROM carm.my_businesses();

-- §10, R10: maintenance refuses to expire anything before its time.
RESET ROLE;
SELECT pg_temp.try($$SELECT carm.run_maintenance(now() + interval '1 day')$$) AS future_as_of;
SELECT pg_temp.try($$SELECT carm.run_maintenance(clock_timestamp() + interval '1 second')$$) AS one_second_ahead;
SELECT * FROM carm.run_maintenance(now() - interval '1 minute');
SELECT status FROM carm.relationship WHERE id = :rel;

SELECT carm.reset_actor();
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_hard_app;
