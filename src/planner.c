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
 *  may see, estimated as (programs the actor reaches) / (distinct programs in
 *  the column), so a user who sees most programs gets a sequential scan and
 *  one who sees 0.1 % an index scan.  The reach is exact from a complete
 *  store and otherwise counted once per store from the facts the grants come
 *  from (cache.c), so planning costs the same whatever the actor's reach.
 *  An actor who reaches much of the table is offered no index condition.
 *
 *  The estimate deliberately ignores the column's per-value statistics.
 *  EXPLAIN shows the estimate to the caller, and PostgreSQL hides pg_stats
 *  of tables under row-level security for that reason: summing the MCV
 *  frequency of a visible program would reveal how many rows it has,
 *  including rows of other submitters the actor may not see (V2-V4), and
 *  the frequency of a visible program outside the MCV list is derived from
 *  the frequencies of every other program, visible or not.  What remains is
 *  the number of distinct programs in the column (which PostgreSQL's own
 *  estimates for GROUP BY and DISTINCT show anyway), not a row count of any
 *  program.
 */
#include "carm_deleg.h"

#include "access/stratnum.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_opfamily_d.h"
#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/selfuncs.h"

PG_FUNCTION_INFO_V1(carm_row_visible_support);

/*
 * An actor reaching more than this share of the program accounts gets no
 * index condition: fetching that much of a table through an index on a
 * long list of programs is never faster than reading it in order with the
 * row check (SPEC §11: never a slower plan than the sequential scan).
 */
#define INDEX_CONDITION_MAX_SHARE 0.2

/*
 * The share of the table's programs the actor reaches: the actor's reach
 * (cache.c) over the number of distinct programs in the column, or of
 * program accounts when the column has no statistics yet.  A count of
 * distinct values, never a frequency: see the header comment.
 */
static double
visible_share(PlannerInfo *root, Node *column, int varRelid, int64 actor)
{
	VariableStatData vardata;
	double		reach;
	double		nd;
	bool		isdefault;

	if (actor == 0)
		return 0;
	reach = carm_reach_estimate(actor);
	if (reach <= 0)
		return 0;
	examine_variable(root, column, varRelid, &vardata);
	nd = get_variable_numdistinct(&vardata, &isdefault);
	ReleaseVariableStats(vardata);
	if (isdefault)
		nd = Max(nd, (double) carm_total_programs());
	return Min(1.0, reach / Max(1.0, nd));
}

static Oid
visible_programs_func(void)
{
	Oid			argtypes[1] = {TEXTOID};

	return LookupFuncName(list_make2(makeString("carm_internal"), makeString("visible_programs")),
						  1, argtypes, false);
}

/*
 * Whether the query already narrows the scan to one program or one row: an
 * equality between the program column, or the single column of a unique
 * index, and a value known when the scan starts.  The index condition would
 * then add nothing a plan can use, and costing it would make the planner
 * estimate `program = ANY (...)` element by element — planning time in
 * proportion to the actor's reach, on every point read and per-program
 * listing of a simple-protocol client.
 */
static bool
query_is_narrow(IndexOptInfo *index, Node *program_column)
{
	RelOptInfo *rel = index->rel;
	ListCell   *lc;

	foreach(lc, rel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		OpExpr	   *op = (OpExpr *) ri->clause;
		Node	   *left;
		Node	   *right;
		Var		   *var = NULL;
		ListCell   *ilc;

		if (!IsA(op, OpExpr) || list_length(op->args) != 2 || get_oprrest(op->opno) != F_EQSEL)
			continue;
		left = strip_implicit_coercions(linitial(op->args));
		right = strip_implicit_coercions(lsecond(op->args));
		if (IsA(left, Var) && is_pseudo_constant_clause(right))
			var = (Var *) left;
		else if (IsA(right, Var) && is_pseudo_constant_clause(left))
			var = (Var *) right;
		if (var == NULL || var->varno != (int) rel->relid || var->varlevelsup != 0)
			continue;
		if (IsA(program_column, Var) && ((Var *) program_column)->varattno == var->varattno)
			return true;
		foreach(ilc, rel->indexlist)
		{
			IndexOptInfo *other = lfirst_node(IndexOptInfo, ilc);

			if (other->unique && other->nkeycolumns == 1 && other->indpred == NIL &&
				other->indexkeys[0] == var->varattno)
				return true;
		}
	}
	return false;
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
	if (query_is_narrow(req->index, linitial(call->args)))
		return NULL;
	/* a broad actor is better served by the sequential scan */
	if (visible_share(req->root, linitial(call->args), 0, carm_current_actor(NULL)) >
		INDEX_CONDITION_MAX_SHARE)
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

/* The fraction of the table the planning actor may see (header comment). */
static Selectivity
visible_fraction(SupportRequestSelectivity *req)
{
	Node	   *fnarg = lthird(req->args);
	Selectivity sel;

	if (!IsA(fnarg, Const) || ((Const *) fnarg)->constisnull)
		return 0.0001;
	sel = visible_share(req->root, linitial(req->args), req->varRelid, carm_current_actor(NULL));
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
