/*
 * check.c — the decisions: point checks (SPEC §8) and the row-level-security
 * functions behind carm.protect() (V1-V5).
 *
 * All of them read the per-backend grant store (cache.c), which follows the
 * statement's snapshot (SPEC §8), and compare expiry with the transaction's
 * start time, the same clock as now().
 *
 * Point checks answer for the account as a whole (SPEC §8, rev. 1.1): only
 * roles that hold the permission count.  The paths that only let a business
 * see rows it submitted itself — a provider's managers (SPMGR, V3) and
 * EXPIRED (V4) — grant nothing there; they act through the row checks.
 *
 * The row functions never raise for a row: a NULL program or submitter, or an
 * absent actor, simply means "not visible".  They are STABLE and PARALLEL
 * SAFE; the actor reaches parallel workers through the carm_deleg.actor
 * setting, and the decision is taken at execution time, so a cached plan
 * reused for another actor decides for that actor.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(carm_has_access);
PG_FUNCTION_INFO_V1(carm_user_has_access);
PG_FUNCTION_INFO_V1(carm_row_visible);
PG_FUNCTION_INFO_V1(carm_row_writable);
PG_FUNCTION_INFO_V1(carm_visible_programs_sql);
PG_FUNCTION_INFO_V1(carm_fill_submitter);
PG_FUNCTION_INFO_V1(carm_accessible_program_ids);

/* ---- point checks ---- */

/*
 * Level a user holds for fn on a target.  Business-scope functions
 * (business_profile, and employee_access/relationships on a BN9) need a role
 * held at all-programs scope, except business_profile.view, which any
 * employee of the business and a PBAM have (§3.2).
 */
/* The level one grant confers at the point-check level (V3/V4 paths: none). */
static CarmLevel
point_level(const CarmGrant *g, CarmFunction fn, TimestampTz now)
{
	CarmRole	role = carm_grant_effective_role(g, now);

	if (role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR)
		return CARM_LEVEL_NONE;
	return carm_role_level(role, fn);
}

static CarmLevel
target_level(int64 user_id, const CarmTarget *t, CarmFunction fn, CarmLevel wanted)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const CarmGrantList *list;
	CarmLevel	best = CARM_LEVEL_NONE;
	bool		business_scope = !t->is_program || fn == CARM_FN_BUSINESS_PROFILE;

	if (business_scope)
	{
		list = carm_business_grants(user_id, t->business_id);
		for (int i = 0; i < list->ngrants; i++)
		{
			const CarmGrant *g = &list->grants[i];
			CarmRole	role = carm_grant_effective_role(g, now);
			CarmLevel	lvl;

			/*
			 * R9, V4: EXPIRED is held on the delegated programs only.  A
			 * BUSINESS relationship's business-level PBAM grant that expired
			 * by time confers nothing, exactly as after the maintenance
			 * cascade, when the closed relationship has no business-level
			 * row at all: the decision must not depend on the sweep.
			 */
			if (role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR)
				continue;
			lvl = carm_role_level(role, fn);
			if (!g->all_programs && !(fn == CARM_FN_BUSINESS_PROFILE && wanted == CARM_LEVEL_VIEW))
				continue;
			if (!g->all_programs)
				lvl = Min(lvl, CARM_LEVEL_VIEW);
			best = Max(best, lvl);
		}
		return best;
	}

	list = carm_target_program_grants(user_id, t->id, t->business_id);
	for (int i = 0; i < list->ngrants; i++)
		best = Max(best, point_level(&list->grants[i], fn, now));
	return best;
}

static bool
check_access(int64 user_id, text *target, text *permission)
{
	CarmFunction fn;
	CarmLevel	level;
	CarmTarget	t;

	carm_parse_permission(text_to_cstring(permission), &fn, &level);
	carm_lookup_target(text_to_cstring(target), &t);
	return target_level(user_id, &t, fn, level) >= level;
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
	actor = carm_require_actor();
	PG_RETURN_BOOL(check_access(actor, PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1)));
}

/* carm.user_has_access(user_id bigint, target text, permission text) — carm_admin. */
Datum
carm_user_has_access(PG_FUNCTION_ARGS)
{
	require_args(fcinfo, 3);
	PG_RETURN_BOOL(check_access(PG_GETARG_INT64(0), PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2)));
}

/* ---- row-level security ---- */

/*
 * Per-call-site state of a row check, kept in fn_extra.  The function
 * argument is a constant in every policy, so it is parsed once; the
 * decision table of that function for the actor is kept while it stays
 * valid (carm_vis_table_valid: same actor, same store generation, no
 * expiry crossed), so a row costs a table probe.  A non-constant function
 * argument is parsed for every row.
 */
typedef struct RowCheckState
{
	CarmFunction fn;
	bool		fn_constant;
	const CarmVisTable *table;	/* for 'actor', or NULL */
	int64		actor;
} RowCheckState;

static RowCheckState *
row_state(FunctionCallInfo fcinfo, int argno)
{
	RowCheckState *st = (RowCheckState *) fcinfo->flinfo->fn_extra;

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(RowCheckState));
		st->fn_constant = get_fn_expr_arg_stable(fcinfo->flinfo, argno);
		if (st->fn_constant)
			st->fn = carm_function_from_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
		fcinfo->flinfo->fn_extra = st;
	}
	if (!st->fn_constant)
	{
		st->fn = carm_function_from_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
		st->table = NULL;
	}
	return st;
}

/*
 * V1-V4 from the grants themselves: may the actor see a row of this program
 * submitted by this business?  The decision table (visibility.c) answers
 * the same question faster; this is the reference, used where no complete
 * store is at hand (a point read in a new session) and for the rare program
 * reached through several acting businesses.
 */
static bool
row_visible(int64 actor, int64 program_id, int64 submitter, CarmFunction fn)
{
	const CarmGrantList *list = carm_program_grants(actor, program_id);
	TimestampTz now;

	if (list->ngrants == 0)
		return false;
	now = GetCurrentTransactionStartTimestamp();
	for (int i = 0; i < list->ngrants; i++)
	{
		const CarmGrant *g = &list->grants[i];
		CarmRole	role = carm_grant_effective_role(g, now);

		if (carm_role_level(role, fn) < CARM_LEVEL_VIEW)
			continue;
		if (g->source == CARM_SRC_EMPLOYEE)
			return true;		/* V1: the client's employees see every row */
		if (submitter == g->via_business_id)
			return true;		/* V2(a), V3, V4: what the provider submitted */
		if (role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR)
			continue;			/* V3, V4: nothing else */
		if (submitter == g->business_id)
		{
			if (g->see_client)
				return true;	/* V2(b) */
		}
		else if (g->see_other && fn != CARM_FN_RULINGS)
			return true;		/* V2(c), never for rulings */
	}
	return false;
}

/*
 * V5: may the actor write (insert, or update/delete) a row of this program
 * submitted by this business?  Needs edit through a grant whose acting
 * business is the submitter (with fill, the trigger asks which business the
 * actor would write as, whatever the row says).  Returns that grant's acting
 * business, or 0.
 */
static int64
row_writer(int64 actor, int64 on_behalf_of, int64 program_id, int64 submitter, bool fill,
		   CarmFunction fn)
{
	const CarmGrantList *list = carm_program_grants(actor, program_id);
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	/* employee grants first: a client employee acts for the client */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < list->ngrants; i++)
		{
			const CarmGrant *g = &list->grants[i];
			CarmRole	role = carm_grant_effective_role(g, now);

			if ((g->source == CARM_SRC_EMPLOYEE) != (pass == 0))
				continue;
			if (role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR ||
				carm_role_level(role, fn) < CARM_LEVEL_EDIT)
				continue;
			if (on_behalf_of != 0 && g->via_business_id != on_behalf_of)
				continue;
			if (fill || submitter == g->via_business_id)
				return g->via_business_id;
		}
	}
	return 0;
}

/* carm_internal.row_visible(program bigint, submitter bigint, function text) */
Datum
carm_row_visible(PG_FUNCTION_ARGS)
{
	RowCheckState *st;
	int64		actor,
				program_id,
				submitter;

	/* NULL-safe (§8), the function argument too: row_state() reads it */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	st = row_state(fcinfo, 2);
	actor = carm_current_actor(NULL);
	if (actor == 0)
		PG_RETURN_BOOL(false);
	program_id = PG_GETARG_INT64(0);
	submitter = PG_GETARG_INT64(1);

	if (st->table == NULL || st->actor != actor || !carm_vis_table_valid(st->table, actor))
	{
		st->table = NULL;
		/*
		 * A complete store is worth deriving a table from; a partial one (a
		 * point read in a new session) is asked directly, and a statement
		 * that keeps meeting unloaded programs completes it (cache.c).
		 */
		if (carm_cache_generation(actor) != 0)
		{
			st->table = carm_vis_table(actor, st->fn);
			st->actor = actor;
		}
	}
	if (st->table != NULL)
	{
		int			d = carm_vis_decide(st->table, program_id, submitter);

		if (d >= 0)
			PG_RETURN_BOOL(d);
	}
	PG_RETURN_BOOL(row_visible(actor, program_id, submitter, st->fn));
}

/* carm_internal.row_writable(program bigint, submitter bigint, function text) */
Datum
carm_row_writable(PG_FUNCTION_ARGS)
{
	RowCheckState *st;
	int64		actor,
				on_behalf_of;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	st = row_state(fcinfo, 2);
	actor = carm_current_actor(&on_behalf_of);
	if (actor == 0)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(row_writer(actor, on_behalf_of, PG_GETARG_INT64(0), PG_GETARG_INT64(1),
							  false, st->fn) != 0);
}

static ArrayType *
id_array(const int64 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	return construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * carm_internal.visible_programs(function text) — the programs where the
 * actor may see some row: the runtime side of the index condition
 * (planner.c), evaluated once per scan for the executing actor.
 */
Datum
carm_visible_programs_sql(PG_FUNCTION_ARGS)
{
	int64		actor;
	int			n = 0;
	int64	   *ids = NULL;
	CarmFunction fn;

	if (PG_ARGISNULL(0))
		PG_RETURN_ARRAYTYPE_P(id_array(NULL, 0));	/* NULL function: no program */
	fn = row_state(fcinfo, 0)->fn;
	actor = carm_current_actor(NULL);
	if (actor != 0)
		ids = carm_vis_table_programs(carm_vis_table(actor, fn), &n);
	PG_RETURN_ARRAYTYPE_P(id_array(ids, n));
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

static void
collect_accessible(const CarmGrantList *list, void *arg)
{
	AccessibleState *as = arg;

	for (int i = 0; i < list->ngrants; i++)
	{
		if (point_level(&list->grants[i], as->fn, as->now) >= as->level)
		{
			if (as->n == as->capacity)
			{
				as->capacity *= 2;
				as->ids = repalloc(as->ids, sizeof(int64) * as->capacity);
			}
			as->ids[as->n++] = list->key;
			return;
		}
	}
}

/*
 * carm_internal.accessible_program_ids(permission text) — programs where
 * the actor holds the permission, as a point check would answer
 * (carm.accessible_programs() maps them to BN15s).
 */
Datum
carm_accessible_program_ids(PG_FUNCTION_ARGS)
{
	AccessibleState as;
	int64		actor;

	require_args(fcinfo, 1);
	carm_parse_permission(text_to_cstring(PG_GETARG_TEXT_PP(0)), &as.fn, &as.level);
	actor = carm_require_actor();
	as.now = GetCurrentTransactionStartTimestamp();
	as.n = 0;
	as.capacity = 64;
	as.ids = palloc(sizeof(int64) * as.capacity);
	carm_foreach_program(actor, collect_accessible, &as, NULL);
	PG_RETURN_ARRAYTYPE_P(id_array(as.ids, as.n));
}

/*
 * carm_internal.fill_submitter() — BEFORE INSERT trigger installed by carm.protect():
 * V5, a NULL submitter becomes the actor's acting business for the row's
 * program.  A different value is left alone and the INSERT policy refuses it.
 * Trigger arguments: program column, submitter column, function.
 */
Datum
carm_fill_submitter(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	HeapTuple	tuple;
	int			prog_att,
				sub_att;
	bool		isnull;
	Datum		prog;
	int64		actor,
				on_behalf_of,
				writer;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_trigger->tgnargs != 3)
		elog(ERROR, "carm_internal.fill_submitter() must be a BEFORE INSERT row trigger with 3 arguments");

	rel = td->tg_relation;
	tuple = td->tg_trigtuple;
	prog_att = SPI_fnumber(RelationGetDescr(rel), td->tg_trigger->tgargs[0]);
	sub_att = SPI_fnumber(RelationGetDescr(rel), td->tg_trigger->tgargs[1]);
	if (prog_att <= 0 || sub_att <= 0)
		elog(ERROR, "protected table \"%s\" lost its program or submitter column",
			 RelationGetRelationName(rel));

	(void) heap_getattr(tuple, sub_att, RelationGetDescr(rel), &isnull);
	if (!isnull)
		return PointerGetDatum(tuple);
	prog = heap_getattr(tuple, prog_att, RelationGetDescr(rel), &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	actor = carm_current_actor(&on_behalf_of);
	if (actor == 0)
		return PointerGetDatum(tuple);
	writer = row_writer(actor, on_behalf_of, DatumGetInt64(prog), 0, true,
						carm_function_from_name(td->tg_trigger->tgargs[2]));
	if (writer == 0)
		return PointerGetDatum(tuple);
	{
		Datum		value = Int64GetDatum(writer);
		bool		replace_null = false;

		tuple = heap_modify_tuple_by_cols(tuple, RelationGetDescr(rel), 1, &sub_att,
										  &value, &replace_null);
	}
	return PointerGetDatum(tuple);
}
