/*
 * actor.c — who is acting (SPEC §2).
 *
 * The actor lives in the setting carm_deleg.actor ("uid" or "uid/bid", where
 * bid is the business fixed by on_behalf_of).  A setting, rather than a C
 * static, because settings are copied into parallel workers (§8: the same
 * decision in workers as in the leader) and because GUC_ACTION_LOCAL gives
 * exactly the transaction-local lifetime pgbouncer's transaction pooling
 * needs, including rollback to savepoint.
 *
 * A check hook refuses every assignment that does not come from set_actor()
 * (which first checks carm_gateway membership) or from the restoration of the
 * leader's settings in a parallel worker: SET, SET LOCAL, ALTER ROLE … SET,
 * function SET clauses and PGOPTIONS all fail with 42501.  Clearing the
 * setting (RESET, DISCARD ALL) is always allowed: it only takes power away.
 *
 * When no actor is set, a session whose session_user was bound with
 * carm.bind_login_role() acts as that user.
 */
#include "carm_deleg.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(carm_set_actor_id);
PG_FUNCTION_INFO_V1(carm_set_actor_external);
PG_FUNCTION_INFO_V1(carm_reset_actor);
PG_FUNCTION_INFO_V1(carm_actor_sql);
PG_FUNCTION_INFO_V1(carm_acting_business_sql);

char	   *carm_actor_setting = NULL;

/* true only while set_actor() itself assigns the setting */
static bool assigning_from_set_actor = false;

/* Parse "uid" or "uid/bid"; false when malformed. */
static bool
parse_actor(const char *s, int64 *uid, int64 *bid)
{
	char	   *end;

	*uid = 0;
	*bid = 0;
	if (s == NULL || *s == '\0')
		return true;
	errno = 0;
	*uid = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *uid <= 0)
		return false;
	if (*end == '/')
	{
		const char *b = end + 1;

		*bid = strtoll(b, &end, 10);
		if (errno != 0 || end == b || *bid <= 0)
			return false;
	}
	return *end == '\0';
}

static bool
check_actor(char **newval, void **extra, GucSource source)
{
	int64		uid,
				bid;

	if (*newval == NULL || **newval == '\0')
		return true;
	if (!parse_actor(*newval, &uid, &bid))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid value for carm_deleg.actor");
		return false;
	}
	if (assigning_from_set_actor || InitializingParallelWorker)
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("carm_deleg.actor can only be set with carm.set_actor()");
	GUC_check_errhint("Members of carm_gateway call carm.set_actor(user_id).");
	return false;
}

/*
 * The parsed actor, kept by the assign hook: every assignment, including the
 * revert at transaction end, RESET and the restore in a parallel worker,
 * goes through it, so checks read two integers instead of parsing a string.
 */
static int64 actor_uid = 0;
static int64 actor_bid = 0;

static void
assign_actor_setting(const char *newval, void *extra)
{
	if (!parse_actor(newval, &actor_uid, &actor_bid))
		actor_uid = actor_bid = 0;
}

/*
 * PGC_USERSET on purpose: the check hook, not the context, is the guard (it
 * refuses superusers too), and a user-settable context lets any role RESET
 * the actor, as connection poolers and applications clearing it expect.
 */
void
carm_define_actor_guc(void)
{
	DefineCustomStringVariable("carm_deleg.actor",
							   "The acting user (set only through carm.set_actor()).",
							   NULL,
							   &carm_actor_setting,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   check_actor, assign_actor_setting, NULL);
}

/* ---- login binding (carm.bind_login_role) ---- */

static bool binding_valid = false;
static Oid	binding_role = InvalidOid;
static int64 binding_user = 0;

/* Called by cache.c whenever delegation state changes. */
void
carm_actor_invalidate_binding(void)
{
	binding_valid = false;
}

static int64
login_binding_user(void)
{
	Oid			role = GetSessionUserId();
	CarmOwnerSave save;

	if (binding_valid && binding_role == role)
		return binding_user;
	if (carm_schema_oid(true) == InvalidOid || !IsTransactionState())
		return 0;

	carm_become_owner(&save);
	PG_TRY();
	{
		Datum		arg = ObjectIdGetDatum(role);
		Oid			argtype = OIDOID;
		bool		isnull;
		SPIPlanPtr	plan;

		SPI_connect();
		plan = SPI_prepare("SELECT b.user_id FROM carm.login_binding b "
						   "WHERE b.login_role = $1", 1, &argtype);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		/* cached below: read the latest state (see carm_read_snapshot()) */
		if (SPI_execute_snapshot(plan, &arg, NULL, carm_read_snapshot(), InvalidSnapshot,
								 true, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "login binding lookup failed");
		binding_user = 0;
		if (SPI_processed == 1)
			binding_user = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}
	PG_FINALLY();
	{
		carm_restore_user(&save);
	}
	PG_END_TRY();
	binding_role = role;
	binding_valid = true;
	return binding_user;
}

/* The acting user id, 0 when none; *on_behalf_of gets the fixed business or 0. */
int64
carm_current_actor(int64 *on_behalf_of)
{
	if (actor_uid != 0)
	{
		if (on_behalf_of)
			*on_behalf_of = actor_bid;
		return actor_uid;
	}
	if (on_behalf_of)
		*on_behalf_of = 0;
	return login_binding_user();
}

int64
carm_require_actor(void)
{
	int64		uid = carm_current_actor(NULL);

	if (uid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no acting user"),
				 errhint("A member of carm_gateway must call carm.set_actor() first.")));
	return uid;
}

/* ---- set_actor() ---- */

static void
require_gateway(void)
{
	Oid			gateway = get_role_oid("carm_gateway", true);

	if (!OidIsValid(gateway) || !has_privs_of_role(GetUserId(), gateway))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set the acting user"),
				 errdetail("Only members of carm_gateway may call carm.set_actor()."),
				 errhint("GRANT carm_gateway TO the application's connection role.")));
}

/*
 * Look up a user (by id or external id) and, optionally, check that it is an
 * employee of the business on whose behalf it acts.  Returns the user id and
 * the business id (0 when none).
 */
static int64
lookup_actor(bool by_id, Datum key, text *volatile on_behalf_of, int64 *bid)
{
	CarmOwnerSave save;
	volatile int64 uid = 0;
	volatile bool found_business = true;
	volatile bool is_employee = true;
	char	   *volatile bn9 = on_behalf_of ? text_to_cstring(on_behalf_of) : NULL;

	*bid = 0;
	if (bn9 && !carm_bn9_is_valid(bn9))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid business number \"%.32s\"", bn9),
				 errhint("A BN9 is nine digits, the last a check digit.")));

	carm_become_owner(&save);
	PG_TRY();
	{
		Oid			argtype = by_id ? INT8OID : TEXTOID;
		bool		isnull;

		SPI_connect();
		if (SPI_execute_with_args(by_id ?
								  "SELECT id FROM carm.app_user WHERE id = $1" :
								  "SELECT id FROM carm.app_user WHERE external_id = $1",
								  1, &argtype, &key, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "actor lookup failed");
		if (SPI_processed == 1)
			uid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
		if (uid != 0 && bn9)
		{
			Oid			types[2] = {TEXTOID, INT8OID};
			Datum		args[2] = {CStringGetTextDatum(bn9), Int64GetDatum(uid)};

			if (SPI_execute_with_args("SELECT b.id, e.user_id IS NOT NULL "
									  "FROM carm.business b LEFT JOIN carm.employee e "
									  "ON e.business_id = b.id AND e.user_id = $2 "
									  "WHERE b.bn9 = $1",
									  2, types, args, NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "business lookup failed");
			found_business = SPI_processed == 1;
			if (found_business)
			{
				*bid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
				is_employee = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 2, &isnull));
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		carm_restore_user(&save);
	}
	PG_END_TRY();

	if (uid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("user does not exist")));
	if (!found_business)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("business %s does not exist", bn9)));
	if (!is_employee)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("user %lld is not an employee of business %s", (long long) uid, bn9)));
	return uid;
}

static void
assign_actor(int64 uid, int64 bid, bool is_local)
{
	char		buf[64];

	if (bid)
		snprintf(buf, sizeof(buf), INT64_FORMAT "/" INT64_FORMAT, uid, bid);
	else
		snprintf(buf, sizeof(buf), INT64_FORMAT, uid);

	assigning_from_set_actor = true;
	PG_TRY();
	{
		(void) set_config_option("carm_deleg.actor", buf, PGC_SUSET, PGC_S_SESSION,
								 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
								 true, 0, false);
	}
	PG_FINALLY();
	{
		assigning_from_set_actor = false;
	}
	PG_END_TRY();
}

/*
 * Both forms of carm.set_actor(): the user by id or by sign-in identity,
 * then is_local (NULL = true) and on_behalf_of.
 */
static void
set_actor(FunctionCallInfo fcinfo, bool by_id)
{
	int64		bid;
	int64		uid;

	require_gateway();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", by_id ? "user_id" : "external_id")));
	uid = lookup_actor(by_id, PG_GETARG_DATUM(0),
					   PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2), &bid);
	assign_actor(uid, bid, PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1));
}

/* carm.set_actor(user_id bigint, is_local boolean, on_behalf_of text) */
Datum
carm_set_actor_id(PG_FUNCTION_ARGS)
{
	set_actor(fcinfo, true);
	PG_RETURN_VOID();
}

/* carm.set_actor(external_id text, is_local boolean, on_behalf_of text) */
Datum
carm_set_actor_external(PG_FUNCTION_ARGS)
{
	set_actor(fcinfo, false);
	PG_RETURN_VOID();
}

/* carm.reset_actor(): no actor, in this transaction and for the session. */
Datum
carm_reset_actor(PG_FUNCTION_ARGS)
{
	(void) set_config_option("carm_deleg.actor", "", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
	PG_RETURN_VOID();
}

/* carm.actor(): the acting user, or NULL. */
Datum
carm_actor_sql(PG_FUNCTION_ARGS)
{
	int64		uid = carm_current_actor(NULL);

	if (uid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(uid);
}

/* carm_internal.on_behalf_of(): the business fixed by set_actor(on_behalf_of), or NULL. */
Datum
carm_acting_business_sql(PG_FUNCTION_ARGS)
{
	int64		bid;

	(void) carm_current_actor(&bid);
	if (bid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(bid);
}

/* ---- the caller, as seen from inside SECURITY DEFINER API functions ---- */

PG_FUNCTION_INFO_V1(carm_caller_is_admin);
PG_FUNCTION_INFO_V1(carm_caller_role);

/*
 * carm_internal.caller_is_admin(): is the role that called the API (the session's
 * current role, not the definer) a member of carm_admin?
 */
Datum
carm_caller_is_admin(PG_FUNCTION_ARGS)
{
	Oid			admin = get_role_oid("carm_admin", true);

	PG_RETURN_BOOL(OidIsValid(admin) && has_privs_of_role(GetOuterUserId(), admin));
}

/* carm_internal.caller_role(): that role's name, recorded in audit events (§9). */
Datum
carm_caller_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(DirectFunctionCall1(namein,
										CStringGetDatum(GetUserNameFromId(GetOuterUserId(), false))));
}
