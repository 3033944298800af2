/*
 * errors.c — what an error of the public API shows a client (SPEC §10,
 * rev. 1.2): its CONTEXT names no internal function.
 *
 * The API's PL/pgSQL functions call helpers of schema carm_internal (a
 * business by its BN9, a NULL check, a role name...), and an error raised
 * in a helper carries PL/pgSQL's and SPI's context lines for every frame:
 *
 *     PL/pgSQL function carm_internal.business(text) line 11 at RAISE
 *     SQL statement "SELECT carm_internal.business(bn9)"
 *     PL/pgSQL function carm.add_program_account(text,text) line 11 at assignment
 *
 * Those frames are the extension's inside, not something a client can act
 * on, and they tie clients to names that may change.  Catching and raising
 * again in every API function would reset the context, but costs a
 * subtransaction per call and an exception block in each of them.  Instead
 * one emit_log_hook, called once for every report just before it is
 * written to the server log and sent to the client, drops the innermost
 * frames up to and including the last one that names carm_internal; the
 * frames of the public function and of the caller's own code stay (and an
 * internal query's text, the QUERY line, is dropped when it names one).
 * The SQLSTATE, message, detail and hint are untouched.
 *
 * Limits: the hook exists once the library is loaded in the backend (the
 * first call of any of the extension's C functions, or at server start
 * when preloaded, as docs/dba.md recommends); an exception handler of the
 * caller's own PL/pgSQL code still reads the full context with GET STACKED
 * DIAGNOSTICS, since nothing is reported then.
 */
#include "carm_deleg.h"

#include "utils/elog.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Does line (up to its end) begin a frame of PL/pgSQL's or SPI's context? */
static bool
starts_frame(const char *line)
{
	/* pl_exec.c, spi.c and functions.c (PostgreSQL 15) */
	static const char *const prefixes[] = {
		"PL/pgSQL function ", "PL/pgSQL expression \"", "PL/pgSQL assignment \"",
		"SQL statement \"", "SQL function \""
	};

	for (size_t i = 0; i < lengthof(prefixes); i++)
		if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/*
 * The context without its frames up to the last one naming carm_internal:
 * the rest starts at the first line after that mention which begins a
 * frame (a statement quoted in the context may span lines), or is NULL.
 */
static char *
strip_internal_frames(const char *context)
{
	const char *last = NULL;
	const char *p = context;

	while ((p = strstr(p, "carm_internal.")) != NULL)
	{
		last = p;
		p++;
	}
	if (last == NULL)
		return pstrdup(context);
	for (p = strchr(last, '\n'); p != NULL; p = strchr(p + 1, '\n'))
		if (starts_frame(p + 1))
			return pstrdup(p + 1);
	return NULL;
}

static void
carm_emit_log(ErrorData *edata)
{
	if (edata->context != NULL && strstr(edata->context, "carm_internal.") != NULL)
		edata->context = strip_internal_frames(edata->context);
	/* the QUERY line of an error inside an internal query (a can't-happen) */
	if (edata->internalquery != NULL && strstr(edata->internalquery, "carm_internal.") != NULL)
	{
		edata->internalquery = NULL;
		edata->internalpos = 0;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Installs the hook (_PG_init). */
void
carm_errors_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = carm_emit_log;
}
