/*
 * matrix.c — the role x function matrix of SPEC §3.2 and the parsing of
 * permission strings ('rulings.edit').  Pure functions, no catalog access.
 */
#include "carm_deleg.h"

#include "mb/pg_wchar.h"

static const char *const role_names[CARM_NUM_ROLES] = {
	"BAM", "PAM", "EDITOR", "VIEWER", "PBAM", "PPAM", "PEDITOR", "PVIEWER",
	"EXPIRED", "SPMGR"
};

static const char *const function_names[CARM_NUM_FUNCTIONS] = {
	"business_profile", "program_profile", "employee_access", "relationships",
	"rulings", "payments", "statements", "notifications", "banking"
};

#define N CARM_LEVEL_NONE
#define V CARM_LEVEL_VIEW
#define E CARM_LEVEL_EDIT
#define M CARM_LEVEL_MANAGE

/*
 * Maximum level per role (rows) and function (columns), SPEC §3.2.
 * Proxy rows encode R11: no banking, no employee_access/relationships of the
 * client, no business_profile except PBAM's view.  EXPIRED and SPMGR are
 * read-only and further limited to the provider's own submissions (V3, V4)
 * by check.c.
 */
static const CarmLevel matrix[CARM_NUM_ROLES][CARM_NUM_FUNCTIONS] = {
	/* bus_prof prog_prof emp_acc  relat  rulings payments stmts  notif  banking */
	{M, M, M, M, M, M, V, V, M},	/* BAM */
	{V, M, M, M, M, M, V, V, M},	/* PAM */
	{V, V, N, N, E, E, V, V, V},	/* EDITOR */
	{V, V, N, N, V, V, V, V, N},	/* VIEWER */
	{V, V, N, N, M, M, V, V, N},	/* PBAM */
	{N, V, N, N, M, M, V, V, N},	/* PPAM */
	{N, V, N, N, E, E, V, V, N},	/* PEDITOR */
	{N, V, N, N, V, V, V, V, N},	/* PVIEWER */
	{N, N, N, N, V, V, V, V, N},	/* EXPIRED */
	{N, N, N, N, V, V, V, V, N},	/* SPMGR */
};

#undef N
#undef V
#undef E
#undef M

/* Role from its API name; CARM_ROLE_NONE when unknown. */
CarmRole
carm_role_from_name(const char *name)
{
	for (int i = 0; i < CARM_NUM_ROLES; i++)
		if (strcmp(name, role_names[i]) == 0)
			return (CarmRole) i;
	return CARM_ROLE_NONE;
}

const char *
carm_role_name(CarmRole role)
{
	if (role < 0 || role >= CARM_NUM_ROLES)
		return "NONE";
	return role_names[role];
}

/* The name of a function (SPEC §3.1). */
const char *
carm_function_name(CarmFunction fn)
{
	if (fn < 0 || fn >= CARM_NUM_FUNCTIONS)
		return "none";
	return function_names[fn];
}

/* Function from its name; an unknown name is the caller's error (22023). */
CarmFunction
carm_function_from_name(const char *name)
{
	for (int i = 0; i < CARM_NUM_FUNCTIONS; i++)
		if (strcmp(name, function_names[i]) == 0)
			return (CarmFunction) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown business function \"%.32s\"", name),
			 errhint("Business functions are business_profile, program_profile, employee_access, relationships, rulings, payments, statements, notifications and banking.")));
	pg_unreachable();
}

/* Parse 'function.level' (SPEC §3.1).  Errors are 22023. */
void
carm_parse_permission(const char *perm, CarmFunction *fn, CarmLevel *level)
{
	const char *dot = strchr(perm, '.');
	char		fname[32];
	size_t		len;

	if (dot == NULL || (len = dot - perm) == 0 || len >= sizeof(fname))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid permission \"%.32s\"", perm),
				 errhint("A permission is a business function and a level, for example rulings.edit.")));
	memcpy(fname, perm, len);
	fname[len] = '\0';
	*fn = carm_function_from_name(fname);

	if (strcmp(dot + 1, "view") == 0)
		*level = CARM_LEVEL_VIEW;
	else if (strcmp(dot + 1, "edit") == 0)
		*level = CARM_LEVEL_EDIT;
	else if (strcmp(dot + 1, "manage") == 0)
		*level = CARM_LEVEL_MANAGE;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid permission level in \"%.32s\"", perm),
				 errhint("Levels are view, edit and manage.")));
}

CarmLevel
carm_role_level(CarmRole role, CarmFunction fn)
{
	if (role < 0 || role >= CARM_NUM_ROLES || fn < 0 || fn >= CARM_NUM_FUNCTIONS)
		return CARM_LEVEL_NONE;
	return matrix[role][fn];
}

/* ------------------------------------------------------------------------
 * Discovery (SPEC §12): the nine functions and the matrix above, as rows,
 * for the views carm.functions, carm.roles and carm.role_permissions
 * (sql/src/95_discovery.sql).  The SQL side never restates the matrix: it
 * reads it from here, so a view cannot disagree with the check.
 * ------------------------------------------------------------------------ */
#include "catalog/pg_collation.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/formatting.h"

PG_FUNCTION_INFO_V1(carm_matrix_functions);
PG_FUNCTION_INFO_V1(carm_matrix_roles);
PG_FUNCTION_INFO_V1(carm_matrix_levels);

/* What each function covers (SPEC §3.1), in the order of function_names. */
static const char *const function_scopes[CARM_NUM_FUNCTIONS] = {
	"business", "program", "business/program", "business/program",
	"program", "program", "program", "program", "program"
};
static const char *const function_covers[CARM_NUM_FUNCTIONS] = {
	"the business account's information",
	"a program account's information",
	"employees' access requests, roles and removal",
	"business relationships and their requests, the provider-side assignment of employees to clients, client groups",
	"ruling (decision) requests and rulings",
	"making payments, payment history",
	"statements of account, invoices, financial information",
	"portal notifications (collection notices excluded)",
	"bank account, pre-authorized debit agreements, collection notices, payment arrangements"
};

/* Who holds each role and how (SPEC §3.2, §4, §5), in the order of role_names. */
static const char *const role_kinds[CARM_NUM_ROLES] = {
	"employee", "employee", "employee", "employee",
	"proxy", "proxy", "proxy", "proxy", "closed", "provider"
};
static const char *const role_descriptions[CARM_NUM_ROLES] = {
	"business account manager: manages the business, its programs, employees and relationships (E1, E7)",
	"program account manager: manages its listed programs and the non-BAM employees within them (E3, E7)",
	"operational role: edits rulings and payments, views the rest of its programs",
	"operational role: read-only on its programs, no banking",
	"proxy business account manager: every BAM of a provider with an active BUSINESS relationship (R6); never the client's employees, relationships or banking (R11)",
	"proxy program account manager: every BAM of a provider with an active PROGRAM relationship, on its delegated programs (R6), or a provider employee assigned by a PBAM (R7)",
	"proxy editor: a provider employee assigned to a client, individually (R7) or through a client group (G4)",
	"proxy viewer: a provider employee assigned to a client read-only (R7, G4)",
	"the provider's BAMs after the relationship expired or ended: read-only, only rows the provider submitted, through row checks only (R9, V4)",
	"a provider PAM while a relationship is active: reads the rows the provider submitted on delegated programs (V3); not assignable"
};

static const char *const level_names[] = {"none", "view", "edit", "manage"};

/* carm_internal.matrix_functions(): one row per function (SPEC §3.1). */
Datum
carm_matrix_functions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int f = 0; f < CARM_NUM_FUNCTIONS; f++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum(f + 1);
		values[1] = CStringGetTextDatum(function_names[f]);
		values[2] = CStringGetTextDatum(function_scopes[f]);
		values[3] = CStringGetTextDatum(function_covers[f]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* carm_internal.matrix_roles(): one row per role the check knows. */
Datum
carm_matrix_roles(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int r = 0; r < CARM_NUM_ROLES; r++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum(r + 1);
		values[1] = CStringGetTextDatum(role_names[r]);
		values[2] = CStringGetTextDatum(role_kinds[r]);
		values[3] = CStringGetTextDatum(role_descriptions[r]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * carm_internal.matrix_levels(): the matrix, one row per (role, function),
 * with the maximum level carm_role_level() answers ('none' for —).
 */
Datum
carm_matrix_levels(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int r = 0; r < CARM_NUM_ROLES; r++)
		for (int f = 0; f < CARM_NUM_FUNCTIONS; f++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			values[0] = CStringGetTextDatum(role_names[r]);
			values[1] = CStringGetTextDatum(function_names[f]);
			values[2] = CStringGetTextDatum(level_names[carm_role_level((CarmRole) r,
																		(CarmFunction) f)]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	return (Datum) 0;
}

/* ---- names checked for SQL: the one list of functions and roles ---- */

PG_FUNCTION_INFO_V1(carm_function_name_sql);
PG_FUNCTION_INFO_V1(carm_role_name_sql);

/*
 * carm_internal.function_name(text): the name of one of the nine functions
 * (§3.1), as carm.protect() stores it; 22023 with the list otherwise.
 */
Datum
carm_function_name_sql(PG_FUNCTION_ARGS)
{
	char	   *name;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("function must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PG_RETURN_TEXT_P(cstring_to_text(carm_function_name(carm_function_from_name(name))));
}

/*
 * carm_internal.role_name(role text, kind text): a role name of one kind,
 * upper-cased and trimmed of blanks (any kind), with the message and hint the API gives for it
 * (22023; 22004 when NULL):
 *   employee    BAM, PAM, EDITOR, VIEWER (E5)
 *   client      PPAM, PEDITOR, PVIEWER: an individual assignment (R7)
 *   group       PPAM, PEDITOR, PVIEWER: a client group's default role (G4)
 */
Datum
carm_role_name_sql(PG_FUNCTION_ARGS)
{
	char	   *kind = PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		employee = strcmp(kind, "employee") == 0;
	bool		group = strcmp(kind, "group") == 0;
	char	   *raw;
	char	   *name;
	CarmRole	role;
	bool		fits;

	if (!employee && !group && strcmp(kind, "client") != 0)
		elog(ERROR, "unknown role kind \"%s\"", kind);
	/* a NULL role is a missing value, whatever the kind (§10 rev. 1.2) */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role must not be null")));
	raw = text_to_cstring(PG_GETARG_TEXT_PP(0));
	/* longer than any role: unknown either way; cut on a character */
	raw[pg_mbcliplen(raw, strlen(raw), 64)] = '\0';
	/*
	 * Every role name, an employee's or a proxy's, is accepted in any case
	 * and trimmed of blanks the way the API trims names (text.c; docs/design.md,
	 * Decisions): ' ppam', 'Bam\t' and 'viewer' followed by a no-break
	 * space all name a role.
	 */
	{
		int			start;
		int			n;

		carm_trim_blank(raw, strlen(raw), &start, &n);
		name = str_toupper(raw + start, n, DEFAULT_COLLATION_OID);
	}
	role = PG_ARGISNULL(0) ? CARM_ROLE_NONE : carm_role_from_name(name);
	fits = employee ? (role >= CARM_ROLE_BAM && role <= CARM_ROLE_VIEWER)
		: (role == CARM_ROLE_PPAM || role == CARM_ROLE_PEDITOR || role == CARM_ROLE_PVIEWER);
	if (!fits)
	{
		if (employee)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown employee role \"%.32s\"", raw),
					 errhint("Employee roles are BAM, PAM, EDITOR and VIEWER.")));
		if (group)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid group role \"%.32s\"", raw),
					 errhint("A group's default role is PPAM, PEDITOR or PVIEWER; provider BAMs already hold PBAM or PPAM (G4).")));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid client role \"%.32s\"", raw),
				 role == CARM_ROLE_PBAM ?
				 errhint("PBAM is never assigned: a provider's BAMs hold it through a BUSINESS relationship (R6, R7).") :
				 errhint("Client roles are PPAM, PEDITOR and PVIEWER.")));
	}
	PG_RETURN_TEXT_P(cstring_to_text(role_names[role]));
}
