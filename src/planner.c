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
 *  SupportRequestSelectivity — the fraction of the table the planning actor
 *  may see, from the column's statistics for each visible program, so a user
 *  who sees most of the table gets a sequential scan and one who sees 0.1 %
 *  an index scan.
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

/* Beyond this many visible programs the estimate uses the average frequency. */
#define CARM_EXACT_ESTIMATE_LIMIT 2000

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

static Selectivity
visible_fraction(SupportRequestSelectivity *req)
{
	Node	   *fnarg = lthird(req->args);
	int64		actor = carm_current_actor(NULL);
	CarmFunction fn;
	VariableStatData vardata;
	int64	   *ids;
	int			n;
	Selectivity sel = 0.0;
	bool		isdefault;
	/* int8 = int8 from the catalog, not looked up through search_path */
	Oid			eqop = get_opfamily_member(INTEGER_BTREE_FAM_OID, INT8OID, INT8OID,
										   BTEqualStrategyNumber);

	if (!IsA(fnarg, Const) || ((Const *) fnarg)->constisnull || actor == 0)
		return 0.0001;
	fn = carm_function_from_name(TextDatumGetCString(((Const *) fnarg)->constvalue));
	ids = carm_visible_programs(actor, fn, CARM_LEVEL_VIEW, &n);
	if (n == 0)
		return 0.0001;

	examine_variable(req->root, linitial(req->args), req->varRelid, &vardata);
	if (n <= CARM_EXACT_ESTIMATE_LIMIT && HeapTupleIsValid(vardata.statsTuple))
	{
		for (int i = 0; i < n; i++)
			sel += var_eq_const(&vardata, eqop, InvalidOid, Int64GetDatum(ids[i]),
								false, true, false);
	}
	else
	{
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
