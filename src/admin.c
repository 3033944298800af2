/*
 * admin.c — who is carm_admin (SPEC §2): judged on the role the code runs
 * as (GetUserId()), never on the session or outer role, and nobody inside a
 * security-restricted operation (ANALYZE, VACUUM, REINDEX, index
 * expressions).  The C side of carm_internal.require_admin(),
 * current_role_is_admin() and caller_role(); user_has_access() calls
 * carm_require_admin_role() too.
 */
#include "carm_deleg.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(carm_caller_is_admin);
PG_FUNCTION_INFO_V1(carm_current_role_is_admin);
PG_FUNCTION_INFO_V1(carm_require_admin);
PG_FUNCTION_INFO_V1(carm_caller_role);

/*
 * Is the role the code runs as a member of carm_admin, outside any
 * security-restricted operation?  Inside one (ANALYZE, VACUUM, REINDEX,
 * CREATE INDEX running index expressions, refreshing a materialized view)
 * the code runs as the table's owner on behalf of whoever started the
 * operation, so it is nobody's carm_admin.  InSecurityRestrictedOperation()
 * stays set inside nested SECURITY DEFINER calls.
 */
static bool
current_role_is_admin(void)
{
	Oid			admin;

	if (InSecurityRestrictedOperation())
		return false;
	admin = get_role_oid("carm_admin", true);
	return OidIsValid(admin) && has_privs_of_role(GetUserId(), admin);
}

/*
 * carm_internal.current_role_is_admin(): called by the SECURITY INVOKER
 * wrappers of the mixed reports, where GetUserId() is the role the caller's
 * code runs as.  Inside a SECURITY DEFINER function it would answer for the
 * definer: the admin variants rely on their EXECUTE privilege instead.
 */
Datum
carm_current_role_is_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(current_role_is_admin());
}

/*
 * The carm_admin refusal of functions whose EXECUTE privilege is granted to
 * carm_admin only: PostgreSQL has already checked the role the code runs
 * as; this adds that nobody is carm_admin inside a security-restricted
 * operation.  Used by carm_internal.require_admin() and user_has_access().
 */
void
carm_require_admin_role(void)
{
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: carm_admin only"),
				 errdetail("Nobody is carm_admin inside a security-restricted operation (ANALYZE, VACUUM, REINDEX, index expressions).")));
}

/*
 * carm_internal.require_admin(): called at the top of the SECURITY DEFINER
 * functions that answer or do everything for carm_admin
 * (carm_require_admin_role()).
 */
Datum
carm_require_admin(PG_FUNCTION_ARGS)
{
	carm_require_admin_role();
	PG_RETURN_VOID();
}

/*
 * The 1.0 SQL function carm._caller_is_admin() (symbol kept so that the 1.0
 * install script still loads; 1.1 drops the function).  Until the update
 * runs it keeps its 1.0 meaning, minus security-restricted operations.
 */
Datum
carm_caller_is_admin(PG_FUNCTION_ARGS)
{
	Oid			admin = get_role_oid("carm_admin", true);

	PG_RETURN_BOOL(!InSecurityRestrictedOperation() && OidIsValid(admin) &&
				   has_privs_of_role(GetOuterUserId(), admin));
}

/*
 * carm_internal.caller_role(): the session's current role outside any
 * SECURITY DEFINER function, recorded in audit events (§9) as information
 * only; no decision is taken on it.
 */
Datum
carm_caller_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(DirectFunctionCall1(namein,
										CStringGetDatum(GetUserNameFromId(GetOuterUserId(), false))));
}
