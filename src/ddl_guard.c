/*
 * ddl_guard.c — refuses to drop the extension while tables are protected
 * (SPEC §12).
 *
 * DROP EXTENSION carm_deleg CASCADE would drop the policies of every
 * protected table (they call carm_internal functions) and leave row-level
 * security enabled and forced with no policy — and it would delete the audit
 * trail without a word.  DROP SCHEMA carm or carm_internal CASCADE would do
 * the same.  This ddl_command_start event trigger (carm_drop_guard, created
 * in sql/src/85_event_triggers.sql) reads the statement before PostgreSQL
 * acts on it and refuses, naming the protected tables.  Without CASCADE,
 * PostgreSQL itself refuses because the policies depend on carm functions;
 * the guard answers first, with the list and the way out.
 *
 * The function is SECURITY DEFINER: it reads carm.protected_table as the
 * extension's owner, whoever issues the DROP (PostgreSQL checks the right to
 * drop afterwards, as usual).
 */
#include "carm_deleg.h"

#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(carm_ddl_guard);

/* Does the name list of a DROP name one of these names? */
static bool
names_one_of(List *objects, const char *const *names, int nnames)
{
	ListCell   *lc;

	foreach(lc, objects)
	{
		Node	   *obj = (Node *) lfirst(lc);

		if (!IsA(obj, String))
			continue;
		for (int i = 0; i < nnames; i++)
			if (strcmp(strVal(obj), names[i]) == 0)
				return true;
	}
	return false;
}

/*
 * Is this DROP aimed at the extension or at one of its schemas?  Returns
 * what it drops, for the message, or NULL.
 */
static const char *
drops_carm(DropStmt *stmt)
{
	static const char *const extensions[] = {"carm_deleg"};
	static const char *const schemas[] = {"carm", "carm_internal"};

	switch (stmt->removeType)
	{
		case OBJECT_EXTENSION:
			return names_one_of(stmt->objects, extensions, lengthof(extensions))
				? "extension carm_deleg" : NULL;
		case OBJECT_SCHEMA:
			/* without CASCADE a non-empty schema is refused by PostgreSQL */
			return stmt->behavior == DROP_CASCADE &&
				names_one_of(stmt->objects, schemas, lengthof(schemas))
				? "the schemas of extension carm_deleg" : NULL;
		default:
			return NULL;
	}
}

typedef struct ProtectedList
{
	MemoryContext caller_cxt;
	int64		count;			/* out: tables protected (roots) */
	char	   *list;			/* out: the first 20, in caller_cxt */
} ProtectedList;

/* The protected tables (as the extension owner, see carm_as_owner). */
static void
read_protected(void *arg)
{
	ProtectedList *p = arg;
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT count(*), "
					"       string_agg(t, ', ' ORDER BY t) FILTER (WHERE n <= 20) "
					"FROM (SELECT p.relid::text AS t, "
					"             row_number() OVER (ORDER BY p.relid::text) AS n "
					"      FROM carm.protected_table p "
					"      WHERE p.relid = p.root) s",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "carm_ddl_guard: could not read carm.protected_table");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	p->count = isnull ? 0 : DatumGetInt64(d);
	if (p->count > 0)
	{
		char	   *tables = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		MemoryContext spi_cxt = MemoryContextSwitchTo(p->caller_cxt);

		/* in the caller's memory: SPI_finish frees SPI's */
		if (p->count > 20)
			p->list = psprintf("%s and %lld more", tables ? tables : "", (long long) (p->count - 20));
		else
			p->list = pstrdup(tables ? tables : "");
		MemoryContextSwitchTo(spi_cxt);
	}
}

/*
 * The event trigger: ereports 2BP01 when the DROP would reach the extension
 * while carm.protected_table records protected tables.
 */
Datum
carm_ddl_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	MemoryContext caller_cxt = CurrentMemoryContext;
	int64		count = 0;
	char	   *list = NULL;
	const char *what;
	ProtectedList protected;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "carm_ddl_guard: not called by the event trigger manager");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (trigdata->parsetree == NULL || !IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();
	what = drops_carm((DropStmt *) trigdata->parsetree);
	if (what == NULL)
		PG_RETURN_VOID();

	protected.caller_cxt = caller_cxt;
	protected.count = 0;
	protected.list = NULL;
	carm_as_owner(read_protected, &protected);
	count = protected.count;
	list = protected.list;
	if (count > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop %s while %lld table%s protected by it",
						what, (long long) count, count == 1 ? " is" : "s are"),
				 errdetail("Protected: %s.", list),
				 errhint("Call carm.unprotect() on each of them first (docs/dba.md, \"Uninstall\").")));
	PG_RETURN_VOID();
}
