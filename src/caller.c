/*
 * caller.c — the role the caller's code runs as, seen from inside the API
 * (SPEC §2, rev. 1.2).
 *
 * Actor-facing functions act for the application's connection, so they
 * answer only code that runs as a member of carm_gateway (actor.c,
 * carm_require_actor()).  Most of them are SECURITY DEFINER: inside, the
 * current user is the extension's owner, and PostgreSQL keeps the user it
 * switched from in a local variable of fmgr_security_definer().  So we keep
 * our own record: PostgreSQL calls fmgr_hook when it enters and leaves every
 * SECURITY DEFINER function (and every function with SET clauses), after the
 * switch; each entry pushes the user the function runs as, each exit (or
 * error) pops it.  The role the caller runs as is the user of the innermost
 * frame that is not one of the extension's own functions; when every frame
 * is the extension's, it is the user before the outermost one: that frame's
 * own user when it does not switch (SECURITY INVOKER with SET clauses), the
 * session's current role (SET ROLE) when it does, and the current user when
 * there is no frame at all (a C function of the API called directly).
 *
 * The record starts when the library is loaded.  Loaded inside a SECURITY
 * DEFINER function (the first call of a session that did not preload it
 * was made there), the frames entered before are not in the record until
 * the transaction ends.  What is known then is the user the code that
 * loaded the library ran as: it is the caller while that code has not
 * returned (no unrecorded frame has ended), unless it is the extension's
 * owner or a superuser — then it may be one of the extension's own
 * functions, whose caller is unknown.  Otherwise an actor-facing function
 * refuses rather than guess (InvalidOid below).  Applications call
 * set_actor() first, which loads the library in their own code; sessions of
 * login-bound roles should preload it (session_preload_libraries or
 * shared_preload_libraries).
 *
 * Costs nothing on the row-check path (no SECURITY DEFINER there) and two
 * array stores per SECURITY DEFINER call elsewhere; the frames are looked at
 * only when an actor-facing function asks.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

typedef struct CallerFrame
{
	Oid			fn_oid;			/* the function entered */
	Oid			userid;			/* the user it runs as */
} CallerFrame;

static CallerFrame *frames = NULL;
static int	nframes = 0;
static int	maxframes = 0;

static fmgr_hook_type prev_fmgr_hook = NULL;

/* loaded inside a SECURITY DEFINER function: frames before it are unknown */
static bool untracked = false;
/* ... and the user the loading code ran as, while it has not returned */
static Oid	untracked_user = InvalidOid;

static void
caller_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg)
{
	if (event == FHET_START)
	{
		/* the previous hook first: an error after the push would leave it there */
		if (prev_fmgr_hook)
			prev_fmgr_hook(event, flinfo, arg);
		if (nframes == maxframes)
		{
			int			n = maxframes == 0 ? 16 : maxframes * 2;

			frames = frames == NULL ?
				MemoryContextAlloc(TopMemoryContext, sizeof(CallerFrame) * n) :
				repalloc(frames, sizeof(CallerFrame) * n);
			maxframes = n;
		}
		frames[nframes].fn_oid = flinfo->fn_oid;
		frames[nframes].userid = GetUserId();
		nframes++;
		return;
	}
	/* FHET_END, FHET_ABORT (an error unwinding through the function) */
	if (nframes > 0)
		nframes--;
	else
		untracked_user = InvalidOid;	/* a frame entered before the load ended */
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, arg);
}

/* Every frame ends with its transaction; after an error, start clean. */
static void
caller_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		nframes = 0;
		untracked = false;
		untracked_user = InvalidOid;
	}
}

void
carm_caller_init(void)
{
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = caller_fmgr_hook;
	untracked = InLocalUserIdChange();
	untracked_user = untracked ? GetUserId() : InvalidOid;
	RegisterXactCallback(caller_xact_callback, NULL);
}

/* Is this function one of the extension's (schema carm or carm_internal)? */
static bool
is_extension_function(Oid fn_oid, Oid api, Oid internal)
{
	Oid			ns = get_func_namespace(fn_oid);

	return OidIsValid(ns) && (ns == api || ns == internal);
}

/* Does this function switch the user (SECURITY DEFINER)? */
static bool
is_security_definer(Oid fn_oid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	bool		secdef = true;	/* unknown: as if it switched */

	if (HeapTupleIsValid(tuple))
	{
		secdef = ((Form_pg_proc) GETSTRUCT(tuple))->prosecdef;
		ReleaseSysCache(tuple);
	}
	return secdef;
}

/*
 * The user the code that loaded the library ran as, when it cannot be one
 * of the extension's own SECURITY DEFINER functions (their owner, or a
 * superuser); else InvalidOid.
 */
static Oid
untracked_user_if_foreign(Oid api)
{
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	if (!OidIsValid(untracked_user) || superuser_arg(untracked_user))
		return InvalidOid;
	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(api));
	if (HeapTupleIsValid(tuple))
	{
		owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
		ReleaseSysCache(tuple);
	}
	return OidIsValid(owner) && owner != untracked_user ? untracked_user : InvalidOid;
}

/*
 * The role the code that called into the extension runs as (see the header
 * comment): what PostgreSQL's current_user was before the API's own
 * SECURITY DEFINER switch.  InvalidOid when it cannot be told (loaded
 * inside a SECURITY DEFINER function, above).
 */
Oid
carm_caller_running_role(void)
{
	Oid			api = carm_schema_oid(true);
	Oid			internal = get_namespace_oid("carm_internal", true);

	for (int i = nframes - 1; i >= 0; i--)
		if (!is_extension_function(frames[i].fn_oid, api, internal))
			return frames[i].userid;
	if (untracked)
		return untracked_user_if_foreign(api);
	if (nframes == 0)
		return GetUserId();
	if (!is_security_definer(frames[0].fn_oid))
		return frames[0].userid;
	return GetOuterUserId();
}
