/*
 * report.c — the check's rules, exposed to SQL for the reports (SPEC §8:
 * the reports and the check derive from one resolver and never disagree).
 *
 * The reports (carm.explain_access, carm.my_access, carm.who_has_access,
 * carm.client_access) read the rows of carm_internal.grants(), the resolver
 * behind the C check, and ask these functions what each row confers, so no
 * role or matrix entry is restated in SQL:
 *   role_level(role, function)     the §3.2 matrix (matrix.c)
 *   effective_role(...)            R9: what a grant row confers at the
 *                                  time of the statement
 *                                  (carm_grant_effective_role, cache.c)
 *   point_permissions(...)         the permissions a grant row confers on a
 *                                  target at the point-check level (§8)
 * carm_grant_point_level() is the rule of check.c's point checks for one
 * grant row; test/pgtap/reports_property.sql proves, on a generated world,
 * that the reports built on it answer exactly what user_has_access answers.
 */
#include "carm_deleg.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(carm_role_level_sql);
PG_FUNCTION_INFO_V1(carm_effective_role_sql);
PG_FUNCTION_INFO_V1(carm_point_permissions_sql);

static const char *const level_names[] = {"none", "view", "edit", "manage"};

/*
 * The level one grant row confers for fn at the point-check level (§8),
 * when a permission of level 'wanted' is asked, on a target that is a BN15
 * (program_target) or a BN9.  business_row: the row is business-level
 * (program NULL in carm_internal.grants()); otherwise it is a row of the
 * target program itself.  The same rule as check.c's target_level():
 *   - a BN9, and business_profile on a BN15, are judged on business-level
 *     rows; they need a role held at all-programs scope, except
 *     business_profile.view, which any business-level row gives (§3.2);
 *   - other functions on a BN15 are judged on the program's rows;
 *   - EXPIRED (V4) and SPMGR (V3) confer nothing here: rows only (§8, 1.1).
 */
CarmLevel
carm_grant_point_level(const CarmGrant *g, bool business_row, bool program_target,
					   CarmFunction fn, CarmLevel wanted, TimestampTz now)
{
	CarmRole	role = carm_grant_effective_role(g, now);
	bool		business_scope = !program_target || fn == CARM_FN_BUSINESS_PROFILE;
	CarmLevel	lvl;

	if (role == CARM_ROLE_NONE || role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR)
		return CARM_LEVEL_NONE;
	if (business_scope != business_row)
		return CARM_LEVEL_NONE;
	lvl = carm_role_level(role, fn);
	if (business_row && !g->all_programs)
	{
		if (!(fn == CARM_FN_BUSINESS_PROFILE && wanted == CARM_LEVEL_VIEW))
			return CARM_LEVEL_NONE;
		lvl = Min(lvl, CARM_LEVEL_VIEW);
	}
	return lvl;
}

static CarmRole
role_arg(text *t)
{
	char	   *s = text_to_cstring(t);
	CarmRole	r = carm_role_from_name(s);

	if (r == CARM_ROLE_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown role \"%.32s\"", s),
				 errhint("Roles are BAM, PAM, EDITOR, VIEWER, PBAM, PPAM, PEDITOR, PVIEWER, EXPIRED and SPMGR.")));
	return r;
}

static CarmGrantSource
source_arg(text *t)
{
	char	   *s = text_to_cstring(t);

	if (strcmp(s, "employee") == 0)
		return CARM_SRC_EMPLOYEE;
	if (strcmp(s, "proxy") == 0)
		return CARM_SRC_PROXY;
	if (strcmp(s, "closed") == 0)
		return CARM_SRC_CLOSED;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown grant source \"%.32s\"", s),
			 errhint("Sources are employee, proxy and closed, as carm_internal.grants() returns them.")));
	pg_unreachable();
}

/*
 * A grant row of carm_internal.grants() from SQL arguments 0..3:
 * (role, source, provider_bam, expires_at); all_programs from argument 4
 * when present.
 */
static void
grant_from_args(FunctionCallInfo fcinfo, CarmGrant *g, bool with_scope)
{
	memset(g, 0, sizeof(*g));
	g->role = role_arg(PG_GETARG_TEXT_PP(0));
	g->source = source_arg(PG_GETARG_TEXT_PP(1));
	g->provider_bam = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	g->expires_at = PG_ARGISNULL(3) ? DT_NOEND : PG_GETARG_TIMESTAMPTZ(3);
	if (with_scope)
		g->all_programs = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
}

/* carm_internal.role_level(role text, function text) RETURNS integer: §3.2, 0..3 */
Datum
carm_role_level_sql(PG_FUNCTION_ARGS)
{
	CarmRole	role = role_arg(PG_GETARG_TEXT_PP(0));
	CarmFunction fn = carm_function_from_name(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	PG_RETURN_INT32((int32) carm_role_level(role, fn));
}

/*
 * carm_internal.effective_role(role, source, provider_bam, expires_at) RETURNS
 * text: the role a grant row confers at the time of the statement (R9): its
 * own, EXPIRED for a provider BAM's proxy row past expires_at, NULL for
 * another provider employee's.
 */
Datum
carm_effective_role_sql(PG_FUNCTION_ARGS)
{
	CarmGrant	g;
	CarmRole	role;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	grant_from_args(fcinfo, &g, false);
	role = carm_grant_effective_role(&g, carm_decision_time());
	if (role == CARM_ROLE_NONE)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(carm_role_name(role)));
}

/*
 * carm_internal.point_permissions(role, source, provider_bam, expires_at,
 * all_programs, business_row, program_target) RETURNS text[]: every
 * permission ('function.level', in matrix order) that the grant row confers
 * on a target at the point-check level, at the time of the statement (§8).  Empty for V3/V4 rows.
 */
Datum
carm_point_permissions_sql(PG_FUNCTION_ARGS)
{
	CarmGrant	g;
	bool		business_row,
				program_target;
	TimestampTz now = carm_decision_time();
	Datum		perms[CARM_NUM_FUNCTIONS * 3];
	int			n = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(5) || PG_ARGISNULL(6))
		PG_RETURN_NULL();
	grant_from_args(fcinfo, &g, true);
	business_row = PG_GETARG_BOOL(5);
	program_target = PG_GETARG_BOOL(6);

	for (int f = 0; f < CARM_NUM_FUNCTIONS; f++)
		for (int l = CARM_LEVEL_VIEW; l <= CARM_LEVEL_MANAGE; l++)
			if (carm_grant_point_level(&g, business_row, program_target, (CarmFunction) f,
									   (CarmLevel) l, now) >= (CarmLevel) l)
			{
				char		buf[64];

				snprintf(buf, sizeof(buf), "%s.%s", carm_function_name((CarmFunction) f),
						 level_names[l]);
				perms[n++] = CStringGetTextDatum(buf);
			}
	PG_RETURN_ARRAYTYPE_P(construct_array(perms, n, TEXTOID, -1, false, TYPALIGN_INT));
}
