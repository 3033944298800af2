-- §8 the decisions, implemented in C (src/check.c, src/planner.c).

CREATE OR REPLACE FUNCTION carm.has_access(target text, permission text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_has_access';
COMMENT ON FUNCTION carm.has_access(text, text) IS
  'Does the acting user hold permission (function.level) on a BN15 or BN9?';

CREATE OR REPLACE FUNCTION carm.user_has_access(user_id bigint, target text, permission text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_user_has_access';
COMMENT ON FUNCTION carm.user_has_access(bigint, text, text) IS
  'Does a user hold permission (function.level) on a BN15 or BN9? (carm_admin)';
REVOKE ALL ON FUNCTION carm.user_has_access(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.user_has_access(bigint, text, text) TO carm_admin;

-- Row-level security (V1-V5).  Policies call these with the function name as
-- a constant; see carm.protect().

CREATE OR REPLACE FUNCTION carm_internal.visible_programs(function text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_visible_programs_sql';
COMMENT ON FUNCTION carm_internal.visible_programs(text) IS
  'Internal: program ids where the actor may see some row of this function (the index condition)';

CREATE OR REPLACE FUNCTION carm_internal.row_visible_support(internal) RETURNS internal
  LANGUAGE c STRICT
  AS 'MODULE_PATHNAME', 'carm_row_visible_support';

CREATE OR REPLACE FUNCTION carm_internal.row_visible(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE COST 1
  SUPPORT carm_internal.row_visible_support
  AS 'MODULE_PATHNAME', 'carm_row_visible';
COMMENT ON FUNCTION carm_internal.row_visible(bigint, bigint, text) IS
  'Row check V1-V4: may the actor see a row of this program submitted by this business?';

-- The same question decided from the grants, never through a decision table:
-- the reference the tables are compared with (test/pgtap/visibility_property.sql).
CREATE OR REPLACE FUNCTION carm_internal.row_visible_by_grants(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_row_visible_by_grants';
COMMENT ON FUNCTION carm_internal.row_visible_by_grants(bigint, bigint, text) IS
  'Row check V1-V4 decided from the grants (the reference of the decision table); for tests and diagnosis';

CREATE OR REPLACE FUNCTION carm_internal.row_writable(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE COST 1
  AS 'MODULE_PATHNAME', 'carm_row_writable';
COMMENT ON FUNCTION carm_internal.row_writable(bigint, bigint, text) IS
  'Row check V5: may the actor write a row of this program submitted by this business?';

CREATE OR REPLACE FUNCTION carm_internal.check_write() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_check_write';
COMMENT ON FUNCTION carm_internal.check_write() IS
  'V5 (BEFORE INSERT OR UPDATE trigger of protected tables): a NULL submitter becomes the actor''s acting business; a refused write raises 42501 with the condition that failed';
