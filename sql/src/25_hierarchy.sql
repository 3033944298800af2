-- §4 the employee rules that hold for every write to carm.employee, API or
-- not (src/hierarchy.c).  E5 and E9 always; E6 and E7 when an actor is set.

CREATE OR REPLACE FUNCTION carm_internal.employee_guard() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_employee_guard';
COMMENT ON FUNCTION carm_internal.employee_guard() IS
  'E5 valid role and scope; E6 not one''s own access (but E1); E7 BAM > PAM > EDITOR/VIEWER (row trigger)';

CREATE OR REPLACE FUNCTION carm_internal.employee_bams() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_employee_bams';
COMMENT ON FUNCTION carm_internal.employee_bams() IS
  'E9 a business keeps at least one BAM, serialised on the business row; E10 warns when one is left (row trigger)';

-- E7 for SQL (the can_change column of carm.employees): the trigger's rule.
CREATE OR REPLACE FUNCTION carm_internal.may_change(manager_role text, manager_programs bigint[],
                                                   employee_role text, employee_programs bigint[])
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_may_change';
COMMENT ON FUNCTION carm_internal.may_change(text, bigint[], text, bigint[]) IS
  'Internal (E7): may a manager with this role and scope (NULL = all programs) change an employee with this role and scope? BAM anyone; PAM non-BAMs within its programs';

CREATE OR REPLACE TRIGGER employee_guard
  BEFORE INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm_internal.employee_guard();
CREATE OR REPLACE TRIGGER employee_bams
  AFTER INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm_internal.employee_bams();
