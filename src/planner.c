/*
 * planner.c — planner support for the row check carm_internal.row_visible().
 *
 * Row-level security adds carm_internal.row_visible(program, submitter, 'fn') to
 * every scan of a protected table.  On its own that forces a full scan.  The
 * support function (PostGIS's idiom for its operators) tells the planner:
 *
 *  SupportRequestIndexCondition — the check implies
 *      program = ANY (carm_internal.visible_programs('fn'))
 *  which a btree index on the program column can use.  The condition is lossy
 *  (the check is still applied to each row, for the submitter rules V2-V4),
 *  and the array is computed at execution time, for the actor of that
 *  execution: a plan made for one actor and reused for another stays exact.
 *
 *  SupportRequestSelectivity — how much of the table the planning actor may
 *  see, so a user who sees most of the table gets a sequential scan and one
 *  who sees 0.1 % an index scan, at a cost that does not grow with the
 *  actor's reach (see visible_fraction).  An actor who reaches much of the
 *  table is offered no index condition at all.
 */
#include "carm_deleg.h"

#include "access/stratnum.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_opfamily_d.h"
#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/selfuncs.h"

PG_FUNCTION_INFO_V1(carm_row_visible_support);

/*
 * Up to this many reachable programs, the estimate reads the column's
 * statistics for each of them; beyond, it assumes rows spread evenly.
 * Either way planning costs at most this many statistics lookups.
 */
#define EXACT_ESTIMATE_PROGRAMS 100
/*
 * An actor reaching more than this share of the program accounts gets no
 * index condition: fetching that much of a table through an index on a
 * long list of programs is never faster than reading it in order with the
 * row check (SPEC §11: never a slower plan than the sequential scan).
 */
#define INDEX_CONDITION_MAX_SHARE 0.2

/* The share of all program accounts the actor reaches (cache.c), or -1. */
static double
reach_share(int64 actor)
{
	double		reach;

	if (actor == 0)
		return -1;
	reach = carm_reach_estimate(actor);
	return Min(1.0, reach / Max(1.0, (double) carm_total_programs()));
}

static Oid
visible_programs_func(void)
{
	Oid			argtypes[1] = {TEXTOID};

	return LookupFuncName(list_make2(makeString("carm_internal"), makeString("visible_programs")),
						  1, argtypes, false);
}

static Node *
index_condition(SupportRequestIndexCondition *req)
{
	FuncExpr   *call = (FuncExpr *) req->node;
	ScalarArrayOpExpr *saop;
	FuncExpr   *array;
	Oid			eqop;

	if (!IsA(call, FuncExpr) || list_length(call->args) != 3 || req->indexarg != 0 ||
		req->index->relam != BTREE_AM_OID)
		return NULL;
	/* a broad actor is better served by the sequential scan */
	if (reach_share(carm_current_actor(NULL)) > INDEX_CONDITION_MAX_SHARE)
		return NULL;

	/*
	 * The array side of an index condition is evaluated once, before the
	 * scan, with no row at hand: it must not reference the indexed table (a
	 * Var there crashes the executor) nor anything volatile.  Policies pass
	 * the function as a constant; anything else gets no index condition.
	 */
	if (!IsA(lthird(call->args), Const) || ((Const *) lthird(call->args))->constisnull)
		return NULL;
	eqop = get_opfamily_member(req->opfamily, INT8OID, INT8OID, BTEqualStrategyNumber);
	if (!OidIsValid(eqop))
		return NULL;

	array = makeFuncExpr(visible_programs_func(), INT8ARRAYOID,
						 list_make1(copyObject(lthird(call->args))),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	saop = makeNode(ScalarArrayOpExpr);
	saop->opno = eqop;
	saop->opfuncid = get_opcode(eqop);
	saop->hashfuncid = InvalidOid;
	saop->negfuncid = InvalidOid;
	saop->useOr = true;
	saop->inputcollid = InvalidOid;
	saop->args = list_make2(copyObject(linitial(call->args)), array);
	saop->location = -1;

	req->lossy = true;
	return (Node *) list_make1(saop);
}

/*
 * The fraction of the table the planning actor may see, for the planner's
 * choice between a scan of the whole table and the index condition.
 *
 * It must cost the same whatever the actor's reach (simple-protocol clients
 * plan every statement), and it must not tell the actor anything about rows
 * it cannot see.  An actor that reaches few programs gets the column's
 * statistics for those programs (nothing about anyone else's); one that
 * reaches many, the share of all program accounts it reaches (cache.c:
 * exact from a complete store, else estimated from counts of its
 * relationships, assignments and scopes, once per store), as if rows were
 * spread evenly over programs.
 */
static Selectivity
visible_fraction(SupportRequestSelectivity *req)
{
	Node	   *fnarg = lthird(req->args);
	int64		actor = carm_current_actor(NULL);
	CarmFunction fn;
	double		reach;
	VariableStatData vardata;
	Selectivity sel = 0.0;
	int64	   *ids;
	int			n;
	/* int8 = int8 from the catalog, not looked up through search_path */
	Oid			eqop = get_opfamily_member(INTEGER_BTREE_FAM_OID, INT8OID, INT8OID,
										   BTEqualStrategyNumber);

	if (!IsA(fnarg, Const) || ((Const *) fnarg)->constisnull || actor == 0)
		return 0.0001;
	reach = carm_reach_estimate(actor);
	if (reach <= 0)
		return 0.0001;
	if (reach > EXACT_ESTIMATE_PROGRAMS)
		return Max(0.0001, reach_share(actor));

	fn = carm_function_from_name(TextDatumGetCString(((Const *) fnarg)->constvalue));
	ids = carm_vis_table_programs(carm_vis_table(actor, fn), &n);
	if (n == 0)
		return 0.0001;
	examine_variable(req->root, linitial(req->args), req->varRelid, &vardata);
	if (n <= EXACT_ESTIMATE_PROGRAMS && HeapTupleIsValid(vardata.statsTuple))
	{
		for (int i = 0; i < n; i++)
			sel += var_eq_const(&vardata, eqop, InvalidOid, Int64GetDatum(ids[i]),
								false, true, false);
	}
	else
	{
		bool		isdefault;
		double		nd = get_variable_numdistinct(&vardata, &isdefault);

		sel = (double) n / Max(nd, (double) carm_total_programs());
	}
	ReleaseVariableStats(vardata);
	CLAMP_PROBABILITY(sel);
	return Max(sel, 0.0001);
}

/* prosupport of carm_internal.row_visible(bigint, bigint, text) */
Datum
carm_row_visible_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);

	if (IsA(rawreq, SupportRequestIndexCondition))
		PG_RETURN_POINTER(index_condition((SupportRequestIndexCondition *) rawreq));

	if (IsA(rawreq, SupportRequestSelectivity))
	{
		SupportRequestSelectivity *req = (SupportRequestSelectivity *) rawreq;

		if (req->is_join || list_length(req->args) != 3)
			PG_RETURN_POINTER(NULL);
		req->selectivity = visible_fraction(req);
		PG_RETURN_POINTER(req);
	}
	PG_RETURN_POINTER(NULL);
}
