/*
 * point.c — the §8 point-check rule, and everything that answers with it:
 * carm.has_access, carm.user_has_access, carm.accessible_programs and the
 * reports (SPEC §8: the reports and the check derive from one resolver and
 * never disagree).
 *
 * Point checks answer for the account as a whole (SPEC §8, rev. 1.1): only
 * roles that hold the permission count.  The paths that only let a business
 * see rows it submitted itself — a provider's managers (SPMGR, V3) and
 * EXPIRED (V4) — grant nothing there; they act through the row checks
 * (check.c).
 *
 * The rule, once: carm_point_business_scope() says which rows judge a
 * function on a target (business-level or the program's own), and
 * carm_grant_point_level() what one such row confers.  carm_point_level()
 * (has_access, user_has_access), accessible_ids() (accessible_programs) and
 * point_permissions() (the reports) all go through them.
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
 * test/pgtap/reports_property.sql proves, on a generated world, that the
 * reports answer exactly what user_has_access answers, and
 * test/pgtap/access.sql that accessible_programs answers what has_access does.
 */
#include "carm_deleg.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(carm_has_access);
PG_FUNCTION_INFO_V1(carm_user_has_access);
PG_FUNCTION_INFO_V1(carm_accessible_program_ids);
PG_FUNCTION_INFO_V1(carm_accessible_business_ids);
PG_FUNCTION_INFO_V1(carm_role_level_sql);
PG_FUNCTION_INFO_V1(carm_effective_role_sql);
PG_FUNCTION_INFO_V1(carm_point_permissions_sql);

static const char *const level_names[] = {"none", "view", "edit", "manage"};

/*
 * Is fn judged on business-level rows (program NULL in
 * carm_internal.grants()) for this target?  A BN9 always; on a BN15 only
 * business_profile, a business-scope function (§3.2); other functions on a
 * BN15 are judged on the program's own rows.
 */
static bool
carm_point_business_scope(bool program_target, CarmFunction fn)
{
	return !program_target || fn == CARM_FN_BUSINESS_PROFILE;
}

/*
 * The level one grant row confers for fn at the point-check level (§8),
 * when a permission of level 'wanted' is asked, on a target that is a BN15
 * (program_target) or a BN9.  business_row: the row is business-level;
 * otherwise it is a row of the target program itself.
 *   - rows of the other kind than carm_point_business_scope() asks for
 *     confer nothing;
 *   - business-level rows need a role held at all-programs scope, except
 *     for business_profile.view, which any business-level row gives (§3.2);
 *   - EXPIRED (V4) and SPMGR (V3) confer nothing here: rows only (§8, 1.1).
 */
static CarmLevel
carm_grant_point_level(const CarmGrant *g, bool business_row, bool program_target,
					   CarmFunction fn, CarmLevel wanted, TimestampTz now)
{
	CarmRole	role = carm_grant_effective_role(g, now);
	CarmLevel	lvl;

	if (role == CARM_ROLE_NONE || role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR)
		return CARM_LEVEL_NONE;
	if (carm_point_business_scope(program_target, fn) != business_row)
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

/*
 * The best level the rows of one list confer: a program's rows, or a
 * business's business-level rows, as carm_point_business_scope() picks.
 */
static CarmLevel
list_point_level(const CarmGrantList *list, bool program_target, CarmFunction fn,
				 CarmLevel wanted, TimestampTz now)
{
	bool		business_row = carm_point_business_scope(program_target, fn);
	CarmLevel	best = CARM_LEVEL_NONE;

	for (int i = 0; i < list->ngrants; i++)
		best = Max(best, carm_grant_point_level(&list->grants[i], business_row, program_target,
												 fn, wanted, now));
	return best;
}

/* The level a user holds for fn on a target (has_access, user_has_access). */
static CarmLevel
point_level(int64 user_id, const CarmTarget *t, CarmFunction fn, CarmLevel wanted)
{
	const CarmGrantList *list;

	list = carm_point_business_scope(t->is_program, fn) ?
		carm_business_grants(user_id, t->business_id) :
		carm_target_program_grants(user_id, t->id, t->business_id);
	return list_point_level(list, t->is_program, fn, wanted, carm_decision_time());
}

static bool
check_access(int64 user_id, text *target, text *permission)
{
	CarmFunction fn;
	CarmLevel	level;
	CarmTarget	t;

	carm_count(CARM_STAT_POINT_CHECKS, 1);
	carm_parse_permission(text_to_cstring(permission), &fn, &level);
	carm_lookup_target(text_to_cstring(target), CARM_NUMBER_ANY, &t);
	return point_level(user_id, &t, fn, level) >= level;
}

static void
require_args(FunctionCallInfo fcinfo, int n)
{
	for (int i = 0; i < n; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of %s must not be null", i + 1,
							get_func_name(fcinfo->flinfo->fn_oid))));
}

/* carm.has_access(target text, permission text) — for the actor. */
Datum
carm_has_access(PG_FUNCTION_ARGS)
{
	int64		actor;

	require_args(fcinfo, 2);
	actor = carm_require_active_actor();
	PG_RETURN_BOOL(check_access(actor, PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)));
}

/*
 * carm.user_has_access(user_id bigint, target text, permission text) —
 * carm_admin: EXECUTE is granted to carm_admin only, so PostgreSQL judges
 * the role the calling code runs as; carm_require_admin_role() (actor.c)
 * adds that nobody is carm_admin inside a security-restricted operation
 * (SPEC §2).
 */
Datum
carm_user_has_access(PG_FUNCTION_ARGS)
{
	carm_require_admin_role();
	require_args(fcinfo, 3);
	PG_RETURN_BOOL(check_access(PG_GETARG_INT64(0), PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2)));
}

typedef struct AccessibleState
{
	CarmFunction fn;
	CarmLevel	level;
	TimestampTz now;
	int64	   *ids;
	int			n;
	int			capacity;
} AccessibleState;

/* One program's rows, or one business's business-level rows. */
static void
collect_accessible(const CarmGrantList *list, void *arg)
{
	AccessibleState *as = arg;

	if (list_point_level(list, true, as->fn, as->level, as->now) < as->level)
		return;
	if (as->n == as->capacity)
	{
		as->capacity *= 2;
		as->ids = repalloc(as->ids, sizeof(int64) * as->capacity);
	}
	as->ids[as->n++] = list->key;
}

/*
 * The program accounts on which the actor holds a permission, as has_access
 * on their BN15 answers, in two parts: programs (a function judged on the
 * program's rows) and businesses every program of which qualifies (a
 * function judged on business-level rows, carm_point_business_scope()).
 * Exactly one part is non-empty for a given function.
 */
static ArrayType *
accessible_ids(FunctionCallInfo fcinfo, bool businesses)
{
	AccessibleState as;
	int64		actor;

	require_args(fcinfo, 1);
	carm_parse_permission(text_to_cstring(PG_GETARG_TEXT_PP(0)), &as.fn, &as.level);
	actor = carm_require_active_actor();
	as.now = carm_decision_time();
	as.n = 0;
	as.capacity = 64;
	as.ids = palloc(sizeof(int64) * as.capacity);
	if (carm_point_business_scope(true, as.fn) == businesses)
	{
		if (businesses)
			carm_foreach_business(actor, collect_accessible, &as);
		else
			carm_foreach_program(actor, collect_accessible, &as, NULL);
	}
	return carm_id_array(as.ids, as.n);
}

/* carm_internal.accessible_program_ids(permission text): see accessible_ids() */
Datum
carm_accessible_program_ids(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(accessible_ids(fcinfo, false));
}

/* carm_internal.accessible_business_ids(permission text): see accessible_ids() */
Datum
carm_accessible_business_ids(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(accessible_ids(fcinfo, true));
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
