-- §8 reports: carm.who_has_access and carm.explain_access on a small story.
-- Maple Imports (importer): Clara BAM, Vera viewer on RM0002.
-- Acme Brokers, BUSINESS relationship with Maple until 10 days from now:
--   Paula BAM (PBAM, R6); Pete assigned PEDITOR on RM0001 (R7); group
--   "Key clients" holding Maple with Gus and Gina as PEDITOR (G4); Gus also
--   has an individual PVIEWER, which overrides his group role (G5).
-- Fir Brokers, BUSINESS relationship whose expiry date has passed; maintenance
--   has not run (R9): Olaf, its BAM, holds EXPIRED.
\set VERBOSITY terse
SET DateStyle = ISO;   -- reasons quote times in the session's style; they are masked below
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
-- This transcript changes actors between statements with session actors
-- (set_actor(..., false)), which are off by default (SPEC §10 rev. 1.2).
SET carm_deleg.allow_session_actor = on;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_reports_app') THEN
    CREATE ROLE regress_reports_app NOLOGIN; END IF;
END $$;
GRANT carm_gateway TO regress_reports_app;

-- Reference data and delegation state, written directly by the extension
-- owner (no actor set).
SELECT carm.add_business('300000007', 'Maple Imports', '{IMPORTER}') AS maple,
       carm.add_business('100000009', 'Acme Brokers', '{CUSTOMS_BROKER}') AS acme,
       carm.add_business('600000004', 'Fir Brokers', '{CUSTOMS_BROKER}') AS fir \gset
SELECT carm.add_program_account('300000007RM0001') AS rm1,
       carm.add_program_account('300000007RM0002') AS rm2 \gset
SELECT carm.register_user('clara', 'Clara (Maple BAM)') AS clara,
       carm.register_user('vera', 'Vera (Maple viewer)') AS vera,
       carm.register_user('paula', 'Paula (Acme BAM)') AS paula,
       carm.register_user('pete', 'Pete (Acme, assigned)') AS pete,
       carm.register_user('gus', 'Gus (Acme, group + own)') AS gus,
       carm.register_user('gina', 'Gina (Acme, group)') AS gina,
       carm.register_user('olaf', 'Olaf (Fir BAM)') AS olaf \gset
INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES
  (:maple, :clara, 'BAM', NULL), (:maple, :vera, 'VIEWER', ARRAY[:rm2]::bigint[]),
  (:acme, :paula, 'BAM', NULL), (:acme, :pete, 'EDITOR', NULL),
  (:acme, :gus, 'EDITOR', NULL), (:acme, :gina, 'EDITOR', NULL),
  (:fir, :olaf, 'BAM', NULL);
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, expires_at, comment)
VALUES (:acme, :maple, 'active', 'BUSINESS', true, now() + interval '10 days', 'customs clearance'),
       (:fir, :maple, 'active', 'BUSINESS', false, now() - interval '1 hour', 'customs clearance')
RETURNING id AS relationship, (SELECT bn9 FROM carm.business b WHERE b.id = provider_id) AS provider,
          expires_at > now() AS in_force;
SELECT id AS rel_acme FROM carm.relationship WHERE provider_id = :acme \gset
INSERT INTO carm.client_assignment (relationship_id, user_id, role, programs) VALUES
  (:rel_acme, :pete, 'PEDITOR', ARRAY[:rm1]::bigint[]),
  (:rel_acme, :gus, 'PVIEWER', NULL);
INSERT INTO carm.client_group (provider_id, name) VALUES (:acme, 'Key clients') RETURNING id AS key_clients \gset
INSERT INTO carm.group_client (group_id, provider_id, client_id) VALUES (:key_clients, :acme, :maple);
INSERT INTO carm.group_employee (group_id, user_id, role) VALUES
  (:key_clients, :gus, 'PEDITOR'), (:key_clients, :gina, 'PEDITOR');

-- The client's BAM: its employees and its active relationships, not the
-- provider's people; Fir's relationship has expired (R9) and is not listed.
SET ROLE regress_reports_app;
SELECT carm.set_actor('clara', false);
SELECT full_name, role, via, scope, path,
       round(extract(epoch FROM expires_at - now()) / 86400) AS expires_in_days
FROM carm.who_has_access('300000007');
SELECT full_name, role, via, scope, path FROM carm.who_has_access('300000007RM0001');
-- ... why Vera sees RM0002 and, on RM0001, only the business profile (E5):
-- each path says what it grants there, exactly as user_has_access decides
SELECT path, role, via, scope, in_force, reason, permissions FROM carm.explain_access(:vera, '300000007RM0001');
SELECT path, role, via, scope, in_force, reason, permissions FROM carm.explain_access(:vera, '300000007RM0002');
-- ... and the access the provider's people have to its business (rev. 1.1)
SELECT path, role, via, scope, in_force, reason, permissions FROM carm.explain_access(:paula, '300000007');
SELECT path, role, via, scope, in_force, reason, permissions FROM carm.explain_access(:pete, '300000007RM0001');
-- a viewer is no BAM: neither report
SELECT carm.set_actor('vera', false);
SELECT * FROM carm.who_has_access('300000007RM0002');
SELECT * FROM carm.explain_access(:vera, '300000007RM0002');
-- but my_access: its own paths, as explain_access shows them (self-service)
SELECT path, role, in_force, reason, permissions FROM carm.my_access('300000007RM0001');
SELECT carm.reset_actor();
RESET ROLE;

-- carm_admin: everyone, one row shape with a kind.  Gus's group row is
-- overridden by his own assignment (G5) and is not listed; Olaf holds EXPIRED
-- (V4), which reaches only rows Fir submitted: row-only.  On the BN9, the
-- proxies of the programs grant nothing on the business account itself.
SELECT full_name, role, via, scope, path, kind, permissions FROM carm.who_has_access('300000007');
-- on RM0002, Pete's assignment (RM0001 only) does not count
SELECT full_name, role, via, scope, path, kind FROM carm.who_has_access('300000007RM0002');

-- Every path, in force or not, and why (times shown as <time>)
SELECT u.full_name, x.path, x.role, x.via, x.scope, x.in_force,
       regexp_replace(x.reason, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?', '<time>') AS reason
FROM unnest(ARRAY[:paula, :pete, :gus, :gina, :olaf]) WITH ORDINALITY AS w(id, n)
JOIN carm.app_user u ON u.id = w.id
CROSS JOIN LATERAL carm.explain_access(w.id, '300000007RM0001') x
ORDER BY w.n, x.path;
SELECT x.path, x.in_force, x.reason FROM carm.explain_access(:pete, '300000007RM0002') x;


-- The point check agrees: Gus views but no longer edits (G5, even lower);
-- Olaf holds EXPIRED (R9 without maintenance), which grants nothing at the
-- point-check level: its own submissions through the row checks only (§8,
-- rev. 1.1).
SELECT u.full_name, p.perm, carm.user_has_access(u.id, '300000007RM0001', p.perm) AS allowed
FROM unnest(ARRAY[:gus, :gina, :olaf]) WITH ORDINALITY AS w(id, n)
JOIN carm.app_user u ON u.id = w.id
CROSS JOIN unnest(ARRAY['rulings.view', 'rulings.edit']) WITH ORDINALITY AS p(perm, m)
ORDER BY w.n, p.m;

-- History (§8): paths since removed, revoked or ended, with when and by
-- whom, from the audit trail.  Clara makes Vera an EDITOR, then removes her
-- (E7, E8); Paula revokes Pete's assignment (R7); Clara ends the Acme
-- relationship (R9), which ends Gus's assignment too.
SET ROLE regress_reports_app;
SELECT carm.set_actor('clara', false);
SELECT carm.set_employee_access('300000007', :vera, 'EDITOR', NULL);
SELECT carm.remove_employee('300000007', :vera);
SELECT carm.set_actor('paula', false);
SELECT carm.revoke_client_access('100000009', '300000007', :pete);
SELECT carm.set_actor('clara', false);
SELECT carm.end_relationship(:rel_acme);
-- the client BAM explains them all: its former employee, the provider's
-- people (ended_by: 1 is Clara, 3 is Paula)
SELECT w.who, x.path, x.role, x.scope, x.in_force,
       regexp_replace(x.reason, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?', '<time>') AS reason,
       x.ended_by,
       x.ended_at IS NOT NULL AS has_ended_at
FROM (VALUES (1, 'Vera', :vera), (2, 'Pete', :pete), (3, 'Gus', :gus), (4, 'Paula', :paula)) AS w(n, who, id)
CROSS JOIN LATERAL carm.explain_access(w.id, '300000007RM0001') x
ORDER BY w.n, x.in_force DESC, x.ended_at, x.path;
SELECT carm.reset_actor();
RESET ROLE;
-- carm_admin's report now: Paula holds EXPIRED (row-only); Pete, Gus, Gina
-- and Vera nothing
SELECT full_name, role, path, kind FROM carm.who_has_access('300000007RM0001');

DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_reports_app;
