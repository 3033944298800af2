/*
 * citus.c — running on Citus: a coordinator plus workers (docs/dba.md "Citus").
 *
 * carm_deleg does not link against Citus.  It needs to know three things,
 * all read through Citus's public face (its settings and its catalog):
 *
 *   carm_citus_loaded()    the Citus library is loaded in this backend;
 *   carm_citus_active()    ... and this database has the citus extension;
 *   carm_citus_is_worker() ... and this node is not the coordinator (its
 *                          pg_dist_local_group is not group 0).
 *
 * What changes when Citus is active, and why:
 *
 * - The actor reaches the workers.  Policies on a distributed table run in
 *   the workers' backends, which Citus opens for the transaction; the only
 *   per-transaction state Citus carries there is a real SET LOCAL, which it
 *   records and replays at the start of every worker transaction (setting
 *   citus.propagate_set_commands = 'local').  So set_actor() runs
 *   "SET LOCAL carm_deleg.actor = '…'" through ProcessUtility with that
 *   setting on for the one statement (actor.c), and session actors, which
 *   Citus would not carry, are refused.  After a subtransaction in which it
 *   was sent ends, it is sent again (see propagated_level below).
 * - Every node accepts that SET LOCAL only through carm_process_utility()
 *   below: inside a transaction block, from a member of carm_gateway, for a
 *   user that exists and is active and a business it is an employee of,
 *   which the first decision checks (carm_actor_accept_set_local, below).
 *   Everything else still meets the check hook's refusal.
 * - carm's own reads run inside queries on shards (the row check of a
 *   policy on app.payment_102040 reads the grants): carm_as_owner() allows
 *   Citus's nested execution for them (owner.c).  They read reference
 *   tables, whose placement every node holds.
 * - Triggers that change other state (E9's serialising update) or decide
 *   (E5-E7) run once, on the coordinator's placement: on a worker's
 *   placement they return at once (hierarchy.c).  Invalidation triggers run
 *   on every placement: each node's backends must drop what changed.  The
 *   maintenance worker skips workers (worker.c).
 */
#include "carm_deleg.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/guc.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Is the Citus library loaded here (a real setting, not a placeholder)?
 * Citus loads only from shared_preload_libraries, before any backend
 * starts, so the answer never changes in a backend: it is asked once.
 */
bool
carm_citus_loaded(void)
{
	static int	loaded = -1;

	if (unlikely(loaded < 0))
		loaded = GetConfigOption("citus.propagate_set_commands", true, false) != NULL &&
			(GetConfigOptionFlags("citus.propagate_set_commands", true) & GUC_CUSTOM_PLACEHOLDER) == 0;
	return loaded == 1;
}

/* Is Citus loaded and installed in this database? */
bool
carm_citus_active(void)
{
	return carm_citus_loaded() && IsTransactionState() &&
		OidIsValid(get_extension_oid("citus", true));
}

static void
read_local_group(void *arg)
{
	bool		isnull;

	if (SPI_execute("SELECT groupid FROM pg_catalog.pg_dist_local_group", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_local_group");
	*(int32 *) arg = SPI_processed == 1 ?
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) : 0;
}

/*
 * Is this node a Citus worker?  A node's group is 0 until the coordinator
 * adds it, and never changes after that: a non-zero answer is kept.
 */
bool
carm_citus_is_worker(void)
{
	static int32 group = 0;

	if (group != 0)
		return true;
	if (!carm_citus_active())
		return false;
	carm_as_owner(read_local_group, &group);
	return group != 0;
}

/*
 * Citus keeps the SET LOCALs it replays per subtransaction, and when a
 * subtransaction commits it goes back to its parent's list: an actor set
 * inside a savepoint that is then released (psql's ON_ERROR_ROLLBACK and
 * drivers' autosave wrap every statement in one) would reach no connection
 * opened afterwards, while PostgreSQL keeps the setting.  Worse, a RESET
 * inside one would be forgotten and the parent's actor replayed.  So when
 * a subtransaction in which we propagated ends, the current value is sent
 * again at the next statement (carm_citus_statement_begin()).
 */
static int	propagated_level = 0;	/* nest level of our last propagation */
static bool resend = false;

/*
 * The actor the workers were last sent in this transaction ("" when none or
 * cleared).  Clearing the setting is open to everyone and takes many forms
 * that carm does not run — RESET, SET … TO DEFAULT, RESET ALL,
 * set_config(…, '', true), a function's SET clause, a DO block — and none of
 * them reaches the workers by itself: their connections, and Citus's record
 * of the SET LOCALs to replay on new ones, would keep acting for the
 * previous actor while this node has none.  So whenever the setting has
 * changed (actor.c's assign hook), the next statement compares it with what
 * was sent and sends it again when they differ.
 */
static char sent_actor[64] = "";
static bool propagating = false;

/*
 * Run one utility statement (SET LOCAL / RESET of carm_deleg.actor) so that
 * Citus sees it: through ProcessUtility, with citus.propagate_set_commands
 * = 'local' for this statement only.  A LOCAL value set at an inner GUC
 * nest level outlives it (AtEOXact_GUC merges it into the transaction).
 */
void
carm_citus_propagate(const char *sql)
{
	int			nest = NewGUCNestLevel();

	propagating = true;
	PG_TRY();
	{
		(void) set_config_option("citus.propagate_set_commands", "local", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not run \"%s\"", sql);
		SPI_finish();
		AtEOXact_GUC(true, nest);
	}
	PG_FINALLY();
	{
		propagating = false;
	}
	PG_END_TRY();
	propagated_level = GetCurrentTransactionNestLevel();
	resend = false;
	strlcpy(sent_actor, carm_actor_setting ? carm_actor_setting : "", sizeof(sent_actor));
	carm_actor_changed = false;
}

static void
carm_citus_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if ((event == SUBXACT_EVENT_COMMIT_SUB || event == SUBXACT_EVENT_ABORT_SUB) &&
		propagated_level > 0 && GetCurrentTransactionNestLevel() <= propagated_level)
	{
		resend = true;
		propagated_level = GetCurrentTransactionNestLevel() - 1;
	}
}

static void
carm_citus_xact_callback(XactEvent event, void *arg)
{
	propagated_level = 0;
	resend = false;
	sent_actor[0] = '\0';
}

/*
 * At each statement (cache.c's ExecutorStart hook, and before each utility
 * statement): send the actor again when a released savepoint made Citus
 * forget it, or when the setting differs from what was last sent.
 */
void
carm_citus_statement_begin(void)
{
	const char *value;

	if (likely(!resend && !carm_actor_changed) || propagating)
		return;
	if (IsParallelWorker() || !carm_citus_active())
	{
		resend = carm_actor_changed = false;
		return;
	}
	value = carm_actor_setting ? carm_actor_setting : "";
	if (resend || strcmp(value, sent_actor) != 0)
		carm_actor_resend();
	resend = carm_actor_changed = false;
}

/*
 * SET LOCAL carm_deleg.actor = '…' as a statement: under Citus, what a
 * coordinator's set_actor() sends a worker.  Validated (actor.c) before it
 * reaches the check hook, which accepts it only during this call.
 */
static void
carm_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile bool accepted = false;

	/* a utility statement may run queries on workers too (COPY, EXPLAIN ANALYZE) */
	if (!IsA(parsetree, TransactionStmt))
		carm_citus_statement_begin();
	if (IsA(parsetree, VariableSetStmt))
	{
		VariableSetStmt *stmt = (VariableSetStmt *) parsetree;

		if (stmt->kind == VAR_SET_VALUE && stmt->is_local && stmt->name != NULL &&
			pg_strcasecmp(stmt->name, "carm_deleg.actor") == 0 && carm_citus_active())
			accepted = carm_actor_accept_set_local(ExtractSetVariableArgs(stmt));
	}
	PG_TRY();
	{
		(prev_process_utility ? prev_process_utility : standard_ProcessUtility)
			(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (accepted)
			carm_actor_end_set_local();
	}
	PG_END_TRY();
	if (!accepted)
		return;

	/*
	 * Sent on by Citus too, when this node opens connections of its own (a
	 * query entered on a worker).  Not by letting Citus record this
	 * statement: it would record the whole query string, which may hold
	 * other statements.
	 */
	carm_actor_resend();
}

void
carm_citus_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = carm_process_utility;
	RegisterSubXactCallback(carm_citus_subxact_callback, NULL);
	RegisterXactCallback(carm_citus_xact_callback, NULL);
}

PG_FUNCTION_INFO_V1(carm_citus_active_sql);
PG_FUNCTION_INFO_V1(carm_citus_is_worker_sql);

/* carm_internal.citus_active() */
Datum
carm_citus_active_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(carm_citus_active());
}

/* carm_internal.citus_is_worker() */
Datum
carm_citus_is_worker_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(carm_citus_is_worker());
}

/* ---- SET LOCAL carm_deleg.actor: the actor a worker receives (moved from actor.c) ---- */

typedef struct SetLocalCheck
{
	int64		user_id;
	int64		business_id;
	bool		exists;
	bool		active;
	bool		is_employee;
} SetLocalCheck;

static void
read_set_local(void *arg)
{
	SetLocalCheck *c = arg;
	static SPIPlanPtr slot = NULL;
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		args[2] = {Int64GetDatum(c->user_id), Int64GetDatum(c->business_id)};
	bool		isnull;
	SPIPlanPtr	plan = carm_owner_plan(&slot,
									   "SELECT u.active, $2 = 0 OR EXISTS (SELECT FROM carm.employee e "
									   "WHERE e.business_id = $2 AND e.user_id = u.id) "
									   "FROM carm.app_user u WHERE u.id = $1", 2, types, false);

	if (SPI_execute_snapshot(plan, args, NULL, carm_read_snapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "actor lookup failed");
	c->exists = SPI_processed == 1;
	if (c->exists)
	{
		c->active = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		c->is_employee = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
}

/*
 * Under Citus, "SET LOCAL carm_deleg.actor = 'uid[/bid]'" is how a
 * coordinator's set_actor() reaches a worker.  Any node accepts it as a
 * statement only inside a transaction block, from a member of carm_gateway
 * (as set_actor() requires), for a user that exists and is active, acting
 * for a business it is an employee of: a worker trusts nothing it is sent.
 * Returns true when the check hook is to accept the assignment that
 * follows, until carm_actor_end_set_local(); false leaves the statement to
 * the check hook (set_actor()'s own statement, or a malformed value, which
 * the hook refuses with its usual message).
 */
bool
carm_actor_accept_set_local(const char *value)
{
	SetLocalCheck c = {0, 0, false, false, false};

	if (carm_actor_assigning || value == NULL ||
		!carm_parse_actor(value, &c.user_id, &c.business_id) || c.user_id == 0)
		return false;
	carm_forbid_restricted();
	carm_require_gateway();
	if (!IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("SET LOCAL carm_deleg.actor outside a transaction block would last for no statement")));
	/*
	 * The user is read at the first decision that needs it, not here: a
	 * worker receives this in the same string as Citus's
	 * assign_distributed_transaction_id(), before which no statement may
	 * query a reference table (Citus would give the backend a distributed
	 * transaction of its own).  Every decision asks carm_current_actor(),
	 * and the new epoch keeps the row check off its fast path until then.
	 */
	carm_actor_unchecked = true;
	carm_decision_epoch++;
	carm_actor_assigning = true;
	return true;
}

/*
 * The check of an actor received by SET LOCAL (above), at the first
 * decision after it (carm_current_actor()): 28000 or 42501, and the
 * statement fails, when the user is unknown, deactivated, or not an
 * employee of the business it acts for.
 */
bool		carm_actor_unchecked = false;

void
carm_actor_check_set_local(void)
{
	static bool checking = false;
	SetLocalCheck c = {0, 0, false, false, false};

	c.user_id = carm_actor_uid;
	c.business_id = carm_actor_bid;
	if (c.user_id == 0)
	{
		carm_actor_unchecked = false;	/* the transaction that set it has ended */
		return;
	}
	if (checking)
		return;					/* the check's own reads decide nothing */
	checking = true;
	PG_TRY();
	{
		carm_as_owner(read_set_local, &c);
	}
	PG_FINALLY();
	{
		checking = false;
	}
	PG_END_TRY();

	/*
	 * A refusal leaves the actor unchecked: after ROLLBACK TO SAVEPOINT the
	 * setting may still be there, and every decision must refuse again.
	 */
	if (!c.exists)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("acting user does not exist")));
	if (!c.active)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("acting user " INT64_FORMAT " is deactivated", c.user_id)));
	if (!c.is_employee)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("user " INT64_FORMAT " is not an employee of business " INT64_FORMAT,
						c.user_id, c.business_id)));
	carm_actor_mark_checked(c.user_id, c.business_id);
	carm_actor_unchecked = false;
}

void
carm_actor_end_set_local(void)
{
	carm_actor_assigning = false;
}

/*
 * Under Citus, send the current actor (or its absence) to the workers
 * again, as set_actor() did (citus.c: a released savepoint made Citus
 * forget it).
 */
void
carm_actor_resend(void)
{
	const char *value = carm_actor_setting ? carm_actor_setting : "";
	int64		uid,
				bid;

	if (*value == '\0' || !carm_parse_actor(value, &uid, &bid))
	{
		/*
		 * LOCAL: a plain RESET would outlive the SET clause of the function
		 * that cleared the actor (reset_actor() means it to, this must not)
		 */
		carm_citus_propagate("SET LOCAL carm_deleg.actor TO DEFAULT");
		return;
	}
	carm_actor_assigning = true;
	PG_TRY();
	{
		carm_citus_propagate(psprintf("SET LOCAL carm_deleg.actor = '%s'", value));
	}
	PG_FINALLY();
	{
		carm_actor_assigning = false;
	}
	PG_END_TRY();
}
