/*
 * matrix.c — the role x function matrix of SPEC §3.2 and the parsing of
 * permission strings ('rulings.edit').  Pure functions, no catalog access.
 */
#include "carm_deleg.h"

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
			 errmsg("unknown function \"%.32s\"", name),
			 errhint("Functions are business_profile, program_profile, employee_access, relationships, rulings, payments, statements, notifications and banking.")));
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
				 errhint("A permission is written function.level, for example rulings.edit.")));
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
