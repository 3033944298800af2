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
 * carm.bind_login_role() acts as that user: the binding holds the role's oid
 * and name, and counts only while both still match the session user (a
 * dropped role whose oid is reused, or a restore into another cluster, binds
 * nobody).
 *
 * The actor's life, and who handles each step:
 *
 *   carm.set_actor(user [, on_behalf_of])           set_actor() below
 *     | gateway role? user exists and active?      (lookup_actor, require_active_user;
 *     |                                             with preload, shared_store.c first)
 *     v
 *   SET [LOCAL] carm_deleg.actor = 'uid[/bid]'     GUC_ACTION_LOCAL: ends with the
 *     | check hook: only set_actor's own            transaction, savepoints included
 *     | assignment (carm_actor_assigning)
 *     v
 *   assign hook: carm_actor_uid, carm_actor_bid    read by every decision (check.c);
 *     |                                             copied into parallel workers
 *     v  (Citus only)
 *   SET LOCAL sent to the workers                  citus.c: carm_actor_resend(); a
 *                                                   worker accepts it through
 *                                                   carm_actor_accept_set_local() and
 *                                                   checks it at its first decision
 *
 * carm_admin is judged in admin.c: on the role the code runs as, never on
 * the session or outer role, and nobody is carm_admin inside a
 * security-restricted operation (SPEC §2).
 * Actor-facing functions answer only code running as a member of
 * carm_gateway (or as the login-bound role), judged on the role the caller
 * runs as before the API's SECURITY DEFINER switch (caller.c): see
 * require_actor_caller().
 */
#include "carm_deleg.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "tcop/pquery.h"
#include "utils/portal.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(carm_set_actor_id);
PG_FUNCTION_INFO_V1(carm_set_actor_external);
PG_FUNCTION_INFO_V1(carm_set_actor_id_for);
PG_FUNCTION_INFO_V1(carm_set_actor_external_for);
PG_FUNCTION_INFO_V1(carm_reset_actor);
PG_FUNCTION_INFO_V1(carm_actor_sql);
PG_FUNCTION_INFO_V1(carm_acting_business_sql);

char	   *carm_actor_setting = NULL;
bool		carm_allow_session_actor = false;	/* SPEC §10 rev. 1.2 */

/*
 * true only while set_actor() itself assigns the setting, or citus.c an
 * actor received by SET LOCAL (carm_actor_accept_set_local)
 */
bool		carm_actor_assigning = false;

/* Parse "uid" or "uid/bid"; false when malformed. */
bool
carm_parse_actor(const char *s, int64 *uid, int64 *bid)
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
	if (!carm_parse_actor(*newval, &uid, &bid))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid value for carm_deleg.actor");
		return false;
	}
	if (carm_actor_assigning || InitializingParallelWorker)
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
int64		carm_actor_uid = 0;	/* read directly by the row check */
int64		carm_actor_bid = 0;	/* the business fixed by on_behalf_of, or 0 */

/*
 * Under Citus, the actor last validated in this backend (by set_actor() or
 * carm_actor_check_set_local()), and whether the setting changed since the
 * workers were last sent it (citus.c).  Any other value that the setting
 * takes — ROLLBACK TO SAVEPOINT restoring an actor received by SET LOCAL
 * but never checked, the restore in a parallel worker — is checked again at
 * the next decision: the check must follow the value, not the statement
 * that assigned it.
 */
static int64 checked_uid = 0;
static int64 checked_bid = 0;

/* The actor citus.c has checked (carm_actor_check_set_local). */
void
carm_actor_mark_checked(int64 uid, int64 bid)
{
	checked_uid = uid;
	checked_bid = bid;
}
bool		carm_actor_changed = false;

static void
assign_actor_setting(const char *newval, void *extra)
{
	if (!carm_parse_actor(newval, &carm_actor_uid, &carm_actor_bid))
		carm_actor_uid = carm_actor_bid = 0;
	carm_actor_changed = true;
	if (carm_actor_uid == 0)
		checked_uid = checked_bid = 0;
	/* a non-empty value is never assigned in the postmaster (GUC_DISALLOW_IN_FILE) */
	else if ((carm_actor_uid != checked_uid || carm_actor_bid != checked_bid) &&
			 carm_citus_loaded())
	{
		carm_actor_unchecked = true;
		carm_decision_epoch++;
	}
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

/* A role was created, changed, renamed or dropped: look the binding up again. */
static void
binding_authid_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	binding_valid = false;
}

void
carm_actor_init(void)
{
	CacheRegisterSyscacheCallback(AUTHOID, binding_authid_callback, (Datum) 0);
	/* a bound role granted carm_gateway or carm_admin binds nobody (below) */
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, binding_authid_callback, (Datum) 0);
}

/*
 * bind_login_role() refuses superusers and members of carm_admin or
 * carm_gateway; a role that became one since it was bound is refused at
 * use, the first time the session looks its binding up (sign-in, in
 * effect), with a WARNING naming the binding (SPEC §2): such a role could
 * set actors, or see everything, and act as the bound user by default too.
 */
static bool
binding_role_still_plain(Oid role, const char *rolename, int64 user_id)
{
	Oid			admin = get_role_oid("carm_admin", true);
	Oid			gateway = get_role_oid("carm_gateway", true);
	const char *what;

	if (superuser_arg(role))
		what = "a superuser";
	else if (OidIsValid(admin) && is_member_of_role(role, admin))
		what = "a member of carm_admin";
	else if (OidIsValid(gateway) && is_member_of_role(role, gateway))
		what = "a member of carm_gateway";
	else
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("login binding of role \"%s\" to user " INT64_FORMAT " is not honoured",
					rolename, user_id),
			 errdetail("Role \"%s\" has become %s since it was bound; a bound login role must hold no carm_deleg powers.",
					   rolename, what),
			 errhint("Revoke that from the role, or remove the binding with carm.unbind_login_role().")));
	return false;
}

/*
 * The user the session user is bound to, or 0.  A binding counts only while
 * the role it was made for still has the same oid and the same name (SPEC
 * §2): a binding restored into another cluster, or left behind by a dropped
 * role whose oid a new role reuses, binds nobody.
 */
typedef struct BindingLookup
{
	Oid			role;
	const char *rolename;
	bool		with_name;
	int64		user_id;
} BindingLookup;

/* The user bound to a login role of this name (as the extension owner). */
static void
read_binding(void *arg)
{
	BindingLookup *l = arg;
	Datum		args[2];
	Oid			argtypes[2] = {OIDOID, NAMEOID};
	bool		isnull;
	SPIPlanPtr	plan;
	NameData	name;

	namestrcpy(&name, l->rolename);
	args[0] = ObjectIdGetDatum(l->role);
	args[1] = NameGetDatum(&name);
	plan = SPI_prepare(l->with_name ?
					   "SELECT b.user_id FROM carm.login_binding b "
					   "WHERE b.login_role::oid = $1 AND b.login_name = $2" :
					   "SELECT b.user_id FROM carm.login_binding b "
					   "WHERE b.login_role::oid = $1", l->with_name ? 2 : 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	/* cached: read the latest state (see carm_read_snapshot()) */
	if (SPI_execute_snapshot(plan, args, NULL, carm_read_snapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "login binding lookup failed");
	if (SPI_processed == 1)
		l->user_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
}

static int64
login_binding_user(void)
{
	Oid			role = GetSessionUserId();
	BindingLookup lookup;
	char	   *rolename;
	bool		with_name;

	if (binding_valid && binding_role == role)
		return binding_user;
	if (carm_schema_oid(true) == InvalidOid || !IsTransactionState())
		return 0;
	/* Citus could not carry a bound actor to its workers (docs/dba.md, Citus) */
	if (carm_citus_active())
	{
		binding_user = 0;
		binding_role = role;
		binding_valid = true;
		return 0;
	}
	rolename = GetUserNameFromId(role, true);
	if (rolename == NULL)
		return 0;

	/* a 1.0 table (this library before ALTER EXTENSION UPDATE) has no name */
	with_name = get_attnum(get_relname_relid("login_binding", carm_schema_oid(false)),
						   "login_name") != InvalidAttrNumber;

	lookup.role = role;
	lookup.rolename = rolename;
	lookup.with_name = with_name;
	lookup.user_id = 0;
	carm_as_owner(read_binding, &lookup);
	if (lookup.user_id != 0 && !binding_role_still_plain(role, rolename, lookup.user_id))
		lookup.user_id = 0;
	binding_user = lookup.user_id;
	binding_role = role;
	binding_valid = true;
	return binding_user;
}

/* The acting user id, 0 when none; *on_behalf_of gets the fixed business or 0. */
int64
carm_current_actor(int64 *on_behalf_of)
{
	if (unlikely(carm_actor_unchecked))
		carm_actor_check_set_local();
	if (carm_actor_uid != 0)
	{
		if (on_behalf_of)
			*on_behalf_of = carm_actor_bid;
		return carm_actor_uid;
	}
	if (on_behalf_of)
		*on_behalf_of = 0;
	return login_binding_user();
}

/*
 * SPEC §2: inside a security-restricted operation (ANALYZE, VACUUM,
 * REINDEX, CREATE INDEX or REFRESH MATERIALIZED VIEW running code as a
 * table's owner) nobody is carm_admin and nobody acts: an index expression
 * written by someone else must not set, use or change delegation state.
 */
void
carm_forbid_restricted(void)
{
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("carm_deleg cannot be used inside a security-restricted operation"),
				 errdetail("ANALYZE, VACUUM, REINDEX, CREATE INDEX and REFRESH MATERIALIZED VIEW run index and view expressions as the table's owner; nobody acts or administers delegation there.")));
}

PG_FUNCTION_INFO_V1(carm_forbid_restricted_sql);

/* carm_internal.forbid_restricted(): carm_forbid_restricted() for SQL functions. */
Datum
carm_forbid_restricted_sql(PG_FUNCTION_ARGS)
{
	carm_forbid_restricted();
	PG_RETURN_VOID();
}

/*
 * SPEC §2 (rev. 1.2): actor-facing functions act for the application's
 * connection, so the role the calling code runs as (current_user before
 * the API's own SECURITY DEFINER switch, caller.c) must be a member of
 * carm_gateway; for the actor of a login binding, the bound session role
 * itself may call them too.  A SECURITY DEFINER function owned by a role
 * with no carm rights, called in a transaction that has an actor, is
 * refused.  Protected tables' row checks do not ask: row-level security
 * applies to every role.
 */
static void
require_actor_caller(void)
{
	Oid			caller = carm_caller_running_role();
	Oid			gateway;

	if (OidIsValid(caller))
	{
		gateway = get_role_oid("carm_gateway", true);
		if (OidIsValid(gateway) && has_privs_of_role(caller, gateway))
			return;
		if (carm_actor_uid == 0 && caller == GetSessionUserId())
			return;				/* the login binding's own role */
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to act for the acting user"),
				 errdetail("Actor-facing functions answer code running as a member of carm_gateway; this code runs as role \"%.32s\".",
						   GetUserNameFromId(caller, true) ? GetUserNameFromId(caller, true) : "?"),
				 errhint("Call the function from the application's connection role, not from a function owned by another role.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to act for the acting user"),
			 errdetail("carm_deleg was loaded inside a SECURITY DEFINER function in this transaction, so the role calling it cannot be told."),
			 errhint("Call carm.set_actor() or carm.actor() first in the session, or add carm_deleg to session_preload_libraries.")));
}

int64
carm_require_actor(void)
{
	int64		uid;

	carm_forbid_restricted();
	uid = carm_current_actor(NULL);

	if (uid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no acting user"),
				 errhint("A member of carm_gateway must call carm.set_actor() first.")));
	require_actor_caller();
	return uid;
}


/* ---- set_actor() ---- */

void
carm_require_gateway(void)
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
 * Users known to exist, by id and by external id.  set_actor() is on the
 * path of every request (SPEC §11: at most 3 µs), so it must not plan and
 * run a query each time.  Any invalidation that names a user, or everything
 * (cache.c calls carm_actor_forget_users), empties both maps; that includes
 * the local replay of an aborted transaction's own changes.
 */
#define KNOWN_EXTERNAL_MAX 128
/*
 * A backend behind a pool serves thousands of users: the maps start again
 * when they reach this many, so its memory does not grow with the users it
 * has served (SPEC §11, rev. 1.2).
 */
#define KNOWN_USERS_MAX 4096

typedef struct KnownExternal
{
	char		external_id[KNOWN_EXTERNAL_MAX];
	int64		user_id;
} KnownExternal;

static MemoryContext known_cxt = NULL;
typedef struct KnownUser
{
	int64		user_id;		/* hash key */
	int8		active;			/* 1 active, 0 deactivated, -1 not read yet */
} KnownUser;

static HTAB *known_ids = NULL;	/* KnownUser */
static HTAB *known_external = NULL;	/* KnownExternal */

void
carm_actor_forget_users(void)
{
	if (known_cxt != NULL)
		MemoryContextReset(known_cxt);
	known_ids = NULL;
	known_external = NULL;
}

static void
known_tables(void)
{
	HASHCTL		ctl;

	if (known_ids != NULL)
		return;
	if (known_cxt == NULL)
		known_cxt = AllocSetContextCreate(CacheMemoryContext, "carm_deleg known users",
										  ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(KnownUser);
	ctl.hcxt = known_cxt;
	known_ids = hash_create("carm_deleg known user ids", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = KNOWN_EXTERNAL_MAX;
	ctl.entrysize = sizeof(KnownExternal);
	known_external = hash_create("carm_deleg known external ids", 64, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* The user id of a known user, or 0. */
static int64
known_user(bool by_id, Datum key)
{
	known_tables();
	if (by_id)
	{
		int64		id = DatumGetInt64(key);

		return hash_search(known_ids, &id, HASH_FIND, NULL) ? id : 0;
	}
	else
	{
		text	   *t = DatumGetTextPP(key);
		int			len = VARSIZE_ANY_EXHDR(t);
		char		buf[KNOWN_EXTERNAL_MAX];
		KnownExternal *e;

		if (len >= KNOWN_EXTERNAL_MAX)
			return 0;
		memcpy(buf, VARDATA_ANY(t), len);
		buf[len] = '\0';
		e = hash_search(known_external, buf, HASH_FIND, NULL);
		return e ? e->user_id : 0;
	}
}

static void
remember_user(bool by_id, Datum key, int64 uid)
{
	bool		found;
	KnownUser  *k;

	known_tables();
	if (hash_get_num_entries(known_ids) >= KNOWN_USERS_MAX ||
		hash_get_num_entries(known_external) >= KNOWN_USERS_MAX)
	{
		carm_actor_forget_users();
		known_tables();
	}
	k = hash_search(known_ids, &uid, HASH_ENTER, &found);
	if (!found)
		k->active = -1;
	if (!by_id)
	{
		text	   *t = DatumGetTextPP(key);
		int			len = VARSIZE_ANY_EXHDR(t);
		char		buf[KNOWN_EXTERNAL_MAX];
		KnownExternal *e;

		if (len >= KNOWN_EXTERNAL_MAX)
			return;
		memcpy(buf, VARDATA_ANY(t), len);
		buf[len] = '\0';
		e = hash_search(known_external, buf, HASH_ENTER, NULL);
		e->user_id = uid;
	}
}

typedef struct ActiveLookup
{
	int64		user_id;
	int8		active;			/* 1 active, 0 deactivated, -1 unknown */
} ActiveLookup;

/* Is the user active? (as the extension owner, with the latest snapshot) */
static void
read_active(void *arg)
{
	ActiveLookup *l = arg;
	static SPIPlanPtr slot = NULL;
	Oid			argtype = INT8OID;
	Datum		value = Int64GetDatum(l->user_id);
	bool		isnull;
	SPIPlanPtr	plan = carm_owner_plan(&slot, "SELECT u.active FROM carm.app_user u WHERE u.id = $1",
									   1, &argtype, false);

	if (SPI_execute_snapshot(plan, &value, NULL, carm_read_snapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "actor lookup failed");
	if (SPI_processed == 1)
		l->active = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull)) ? 1 : 0;
}

/*
 * The actor of an actor-facing function (SPEC §2): 42501 when there is none
 * ("no acting user"), 28000 when it is deactivated (SPEC §10 rev. 1.2: an
 * acting-user problem, told apart from a refusal and from an unknown
 * object).  The one implementation,
 * for the C checks and, through carm_internal.require_active_actor(), for
 * every SQL function.  Whether a user is active is remembered until an
 * invalidation names the user (its profile changed) and read with the
 * latest snapshot, like the grants.
 */
static int64 require_active_user(int64 uid);

int64
carm_require_active_actor(void)
{
	return require_active_user(carm_require_actor());
}

/* The user uid, when active; 28000 when deactivated (carm_require_active_actor()). */
static int64
require_active_user(int64 uid)
{
	KnownUser  *k;
	bool		found;

	known_tables();
	if (hash_get_num_entries(known_ids) >= KNOWN_USERS_MAX ||
		hash_get_num_entries(known_external) >= KNOWN_USERS_MAX)
	{
		carm_actor_forget_users();
		known_tables();
	}
	k = hash_search(known_ids, &uid, HASH_ENTER, &found);
	if (!found || k->active < 0)
	{
		ActiveLookup lookup = {uid, -1};
		int8		active;
		bool		shared = carm_shared_usable();
		uint64		stamp = carm_shared_position();	/* before the read's snapshot */
		double		value;

		k->active = -1;
		if (shared && carm_shared_get(CARM_SHARED_USER, uid, 0, stamp, NULL, NULL, NULL, &value,
									  NULL, NULL, 0))
			active = value > 0 ? 1 : 0;
		else
		{
			carm_as_owner(read_active, &lookup);
			active = lookup.active > 0 ? 1 : 0;
			/* an existing user's state, read with the latest snapshot */
			if (shared && lookup.active >= 0)
				carm_shared_put(CARM_SHARED_USER, uid, 0, stamp, NULL, 0, 0, (double) active);
		}
		/* the callback may have emptied the map meanwhile: look again */
		known_tables();
		k = hash_search(known_ids, &uid, HASH_ENTER, &found);
		k->active = IsInParallelMode() ? -1 : active;
		if (!active)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("acting user " INT64_FORMAT " is deactivated", uid),
					 errhint("A carm_admin reactivates users with carm.reactivate_user().")));
		return uid;
	}
	if (k->active == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("acting user " INT64_FORMAT " is deactivated", uid),
				 errhint("A carm_admin reactivates users with carm.reactivate_user().")));
	return uid;
}

PG_FUNCTION_INFO_V1(carm_require_actor_sql);
PG_FUNCTION_INFO_V1(carm_require_active_actor_sql);

/* carm_internal.require_actor(): the actor, or 42501 "no acting user". */
Datum
carm_require_actor_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(carm_require_actor());
}

/* carm_internal.require_active_actor(): the actor, active, or 42501. */
Datum
carm_require_active_actor_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(carm_require_active_actor());
}

/*
 * Look up a user (by id or external id) and, optionally, check that it is an
 * employee of the business on whose behalf it acts.  Returns the user id and
 * the business id (0 when none).
 */
/*
 * With the library preloaded, whether a user exists and is active is shared
 * by every backend (shared_store.c; a change to the user's profile sends the
 * user's key, which makes it stale): a pooled backend that meets a user for
 * the first time asks shared memory instead of running two queries.
 * shared_user_known() fills the active flag of the known-user map too.
 */
static bool
shared_user_known(int64 uid)
{
	double		active;
	KnownUser  *k;

	if (!carm_shared_usable() ||
		!carm_shared_get(CARM_SHARED_USER, uid, 0, carm_shared_position(), NULL, NULL, NULL,
						 &active, NULL, NULL, 0))
		return false;
	known_tables();
	k = hash_search(known_ids, &uid, HASH_ENTER, NULL);
	k->active = active > 0 ? 1 : 0;
	return true;
}

typedef struct ActorLookup
{
	bool		by_id;
	Datum		key;
	const char *bn9;			/* on_behalf_of, or NULL */
	int64		user_id;		/* out: 0 when unknown */
	bool		found_business; /* out */
	bool		is_employee;	/* out */
	int64		business_id;	/* out */
} ActorLookup;

/* The user, and the business it acts for (as the extension owner). */
static void
read_actor(void *arg)
{
	ActorLookup *l = arg;
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static SPIPlanPtr business_plan = NULL;
	Oid			argtype = l->by_id ? INT8OID : TEXTOID;
	bool		isnull;
	SPIPlanPtr	plan = carm_owner_plan(&plans[l->by_id], l->by_id ?
									   "SELECT id FROM carm.app_user WHERE id = $1" :
									   "SELECT id FROM carm.app_user WHERE external_id = $1",
									   1, &argtype, false);

	if (SPI_execute_plan(plan, &l->key, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "actor lookup failed");
	if (SPI_processed == 1)
		l->user_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	if (l->user_id != 0 && l->bn9)
	{
		Oid			types[2] = {TEXTOID, INT8OID};
		Datum		args[2] = {CStringGetTextDatum(l->bn9), Int64GetDatum(l->user_id)};

		plan = carm_owner_plan(&business_plan,
							   "SELECT b.id, e.user_id IS NOT NULL "
							   "FROM carm.business b LEFT JOIN carm.employee e "
							   "ON e.business_id = b.id AND e.user_id = $2 "
							   "WHERE b.bn9 = $1", 2, types, false);
		if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "business lookup failed");
		l->found_business = SPI_processed == 1;
		if (l->found_business)
		{
			l->business_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
			l->is_employee = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 2, &isnull));
		}
	}
}

static int64
lookup_actor(bool by_id, Datum key, text *on_behalf_of, int64 *bid)
{
	ActorLookup l = {by_id, key, NULL, 0, true, true, 0};
	int64		uid;

	l.bn9 = on_behalf_of ? text_to_cstring(on_behalf_of) : NULL;
	*bid = 0;
	if (l.bn9 && !carm_bn9_is_valid(l.bn9))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid business number \"%.32s\"", l.bn9),
				 errhint("A BN9 is nine digits, the last a check digit.")));
	if (l.bn9 == NULL && (uid = known_user(by_id, key)) != 0)
		return uid;
	if (l.bn9 == NULL && by_id && shared_user_known(DatumGetInt64(key)))
	{
		remember_user(by_id, key, DatumGetInt64(key));
		return DatumGetInt64(key);
	}

	carm_as_owner(read_actor, &l);

	if (l.user_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("acting user does not exist")));
	remember_user(by_id, key, l.user_id);
	if (!l.found_business)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("business %.32s does not exist", l.bn9)));
	if (!l.is_employee)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("user " INT64_FORMAT " is not an employee of business %.32s", l.user_id, l.bn9)));
	*bid = l.business_id;
	return l.user_id;
}

static void
assign_actor(int64 uid, int64 bid, bool is_local)
{
	char		buf[64];

	if (bid)
		snprintf(buf, sizeof(buf), INT64_FORMAT "/" INT64_FORMAT, uid, bid);
	else
		snprintf(buf, sizeof(buf), INT64_FORMAT, uid);

	checked_uid = uid;			/* set_actor() checked it (lookup_actor()) */
	checked_bid = bid;
	carm_actor_assigning = true;
	PG_TRY();
	{
		if (is_local && carm_citus_active())
			carm_citus_propagate(psprintf("SET LOCAL carm_deleg.actor = '%s'", buf));
		else
			(void) set_config_option("carm_deleg.actor", buf, PGC_SUSET, PGC_S_SESSION,
									 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
									 true, 0, false);
	}
	PG_FINALLY();
	{
		carm_actor_assigning = false;
	}
	PG_END_TRY();
}

/* Does an expression tree call the function fnoid? */
static bool
calls_function_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == *(Oid *) context)
		return true;
	return expression_tree_walker(node, calls_function_walker, context);
}

/* Does a plan (or one below it) call the function fnoid in its own expressions? */
static bool
plan_calls_function(Plan *plan, Oid fnoid)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	check_stack_depth();
	if (calls_function_walker((Node *) plan->targetlist, &fnoid) ||
		calls_function_walker((Node *) plan->qual, &fnoid))
		return true;
	switch (nodeTag(plan))
	{
		case T_Result:
			if (calls_function_walker(((Result *) plan)->resconstantqual, &fnoid))
				return true;
			break;
		case T_FunctionScan:
			if (calls_function_walker((Node *) ((FunctionScan *) plan)->functions, &fnoid))
				return true;
			break;
		case T_SubqueryScan:
			if (plan_calls_function(((SubqueryScan *) plan)->subplan, fnoid))
				return true;
			break;
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				if (plan_calls_function(lfirst(lc), fnoid))
					return true;
			break;
		default:
			break;
	}
	return plan_calls_function(plan->lefttree, fnoid) ||
		plan_calls_function(plan->righttree, fnoid);
}

/*
 * Is this call of set_actor() written in the client's own statement (SELECT
 * carm.set_actor(...)), rather than made by a function or DO block that goes
 * on to run queries as the actor?  Only the former is useless outside a
 * transaction block: the transaction, and the actor, end with the statement.
 */
static bool
called_by_top_level_statement(Oid fnoid)
{
	ListCell   *lc;

	if (ActivePortal == NULL)
		return false;
	foreach(lc, ActivePortal->stmts)
	{
		PlannedStmt *stmt = lfirst_node(PlannedStmt, lc);
		ListCell   *sp;

		if (stmt->commandType == CMD_UTILITY)
			continue;
		if (plan_calls_function(stmt->planTree, fnoid))
			return true;
		foreach(sp, stmt->subplans)
			if (plan_calls_function(lfirst(sp), fnoid))
				return true;
	}
	return false;
}

/*
 * SPEC §2: a transaction-local actor set by a statement of its own outside a
 * transaction block would last for no statement (25P01); a session actor
 * may be forbidden by carm_deleg.allow_session_actor (42501).  A
 * multi-statement simple-protocol string runs in an implicit transaction
 * block, which IsTransactionBlock() counts: the actor lasts for the rest of
 * the string.
 */
static void
check_actor_lifetime(FunctionCallInfo fcinfo, bool is_local)
{
	if (!is_local && !carm_allow_session_actor)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("session-level acting users are not allowed"),
				 errdetail("carm_deleg.allow_session_actor is off: behind a transaction-pooling pooler a session actor would act for the next client of the server connection."),
				 errhint("Run BEGIN; SELECT carm.set_actor(...); ...; COMMIT; (or the driver's transaction block).")));
	if (!is_local && carm_citus_active())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("session-level acting users are not supported under Citus"),
				 errdetail("Citus carries only transaction-local settings to its workers, where the policies of distributed tables run."),
				 errhint("Call carm.set_actor() inside BEGIN ... COMMIT with is_local => true.")));
	if (is_local && !IsTransactionBlock() &&
		called_by_top_level_statement(fcinfo->flinfo->fn_oid))
		ereport(ERROR,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("carm.set_actor() outside a transaction block would last for no statement"),
				 errdetail("With is_local => true the acting user ends with the transaction, and this statement is a transaction of its own."),
				 errhint("Run BEGIN; SELECT carm.set_actor(...); ...; COMMIT; (or the driver's transaction block).")));
}

/*
 * set_actor() by a role that bypasses row-level security: whatever it reads
 * next is not filtered, whoever the actor is.
 */
static void
warn_if_bypassing_rls(void)
{
	Oid			role = GetUserId();

	if (superuser_arg(role) || has_bypassrls_privilege(role))
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("role \"%s\" bypasses row-level security", GetUserNameFromId(role, false)),
				 errdetail("Protected tables are not filtered for the acting user in this session."),
				 errhint("Connect the application as a role without SUPERUSER and BYPASSRLS.")));
}


/*
 * Every form of carm.set_actor(): the user by id or by sign-in identity
 * (argument 0), then is_local (NULL = true) and on_behalf_of, each where
 * the form has it (argument number, or -1).
 */
static void
set_actor(FunctionCallInfo fcinfo, bool by_id, int is_local_arg, int on_behalf_of_arg)
{
	int64		bid;
	int64		uid;
	bool		is_local = is_local_arg < 0 || PG_ARGISNULL(is_local_arg) ?
		true : PG_GETARG_BOOL(is_local_arg);
	text	   *on_behalf_of = on_behalf_of_arg < 0 || PG_ARGISNULL(on_behalf_of_arg) ?
		NULL : PG_GETARG_TEXT_PP(on_behalf_of_arg);

	carm_forbid_restricted();
	carm_require_gateway();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", by_id ? "user_id" : "external_id")));
	check_actor_lifetime(fcinfo, is_local);
	uid = lookup_actor(by_id, PG_GETARG_DATUM(0), on_behalf_of, &bid);
	(void) require_active_user(uid);	/* 28000 at once (SPEC §10 rev. 1.2) */
	warn_if_bypassing_rls();
	assign_actor(uid, bid, is_local);
}

/*
 * carm.set_actor(user_id bigint [, is_local boolean [, on_behalf_of text]]).
 * The forms are overloads rather than one function with defaults: the
 * parser and the planner read and expand argument defaults on every call,
 * which costs a request as much as the rest of set_actor() (SPEC §11).
 */
Datum
carm_set_actor_id(PG_FUNCTION_ARGS)
{
	set_actor(fcinfo, true, PG_NARGS() >= 2 ? 1 : -1, PG_NARGS() >= 3 ? 2 : -1);
	PG_RETURN_VOID();
}

/* carm.set_actor(user_id bigint, on_behalf_of text) */
Datum
carm_set_actor_id_for(PG_FUNCTION_ARGS)
{
	set_actor(fcinfo, true, -1, 1);
	PG_RETURN_VOID();
}

/* carm.set_actor(external_id text [, is_local boolean [, on_behalf_of text]]) */
Datum
carm_set_actor_external(PG_FUNCTION_ARGS)
{
	set_actor(fcinfo, false, PG_NARGS() >= 2 ? 1 : -1, PG_NARGS() >= 3 ? 2 : -1);
	PG_RETURN_VOID();
}

/* carm.set_actor(external_id text, on_behalf_of text) */
Datum
carm_set_actor_external_for(PG_FUNCTION_ARGS)
{
	set_actor(fcinfo, false, -1, 1);
	PG_RETURN_VOID();
}


/* carm.reset_actor(): no actor, in this transaction and for the session. */
Datum
carm_reset_actor(PG_FUNCTION_ARGS)
{
	if (carm_citus_active())
		carm_citus_propagate("RESET carm_deleg.actor");
	else
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

