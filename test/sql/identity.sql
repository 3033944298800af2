-- §2 identity: register_user, set_actor, actor(), the guarded setting.
\set VERBOSITY terse
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
SELECT carm._bn9_is_valid('123456782') AS good, carm._bn9_is_valid('123456789') AS bad_check,
       carm._bn15_is_valid('123456782RM0001') AS good15, carm._bn15_is_valid('123456782RT0001') AS bad15;
SELECT carm.actor();
SET carm_deleg.actor = '1';
