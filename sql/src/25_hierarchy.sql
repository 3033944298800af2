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

CREATE OR REPLACE TRIGGER employee_guard
  BEFORE INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm_internal.employee_guard();
CREATE OR REPLACE TRIGGER employee_bams
  AFTER INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm_internal.employee_bams();
