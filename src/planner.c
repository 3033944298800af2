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
 *  may see, estimated as (programs visible to the actor) / (programs in the
 *  column or in carm.program, whichever is more), so a user who sees most
 *  programs gets a sequential scan and one who sees 0.1 % an index scan.
 *
 *  The estimate deliberately ignores the column's per-value statistics.
 *  EXPLAIN shows the estimate to the caller, and PostgreSQL hides pg_stats
 *  of tables under row-level security for that reason: summing the MCV
 *  frequency of a visible program would reveal how many rows it has,
 *  including rows of other submitters the actor may not see (V2-V4), and
 *  the frequency of a visible program outside the MCV list is derived from
 *  the frequencies of every other program, visible or not.  What remains is
 *  the number of distinct programs in the column and in carm.program, not a
 *  row count of any program.
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
	int			n;
	Selectivity sel;
	bool		isdefault;
	double		nd;

	if (!IsA(fnarg, Const) || ((Const *) fnarg)->constisnull || actor == 0)
		return 0.0001;
	fn = carm_function_from_name(TextDatumGetCString(((Const *) fnarg)->constvalue));
	(void) carm_visible_programs(actor, fn, CARM_LEVEL_VIEW, &n);
	if (n == 0)
		return 0.0001;

	/* a count of distinct values, never a frequency: see the header comment */
	examine_variable(req->root, linitial(req->args), req->varRelid, &vardata);
	nd = get_variable_numdistinct(&vardata, &isdefault);
	ReleaseVariableStats(vardata);
	sel = (double) n / Max(isdefault ? 0.0 : nd, (double) carm_total_programs());
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
