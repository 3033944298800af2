/*
 * bn.c — business number validation (SPEC §1).
 *
 * BN9: nine digits, the ninth a Luhn (mod 10) check digit over the first eight.
 * BN15: a valid BN9, the program identifier 'RM', and four digits.
 */
#include "carm_deleg.h"

#include "fmgr.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(carm_bn9_valid_sql);
PG_FUNCTION_INFO_V1(carm_bn15_valid_sql);

bool
carm_bn9_is_valid(const char *s)
{
	int			sum = 0;

	for (int i = 0; i < 9; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	if (s[9] != '\0')
		return false;

	/* Luhn: double every second digit from the left (positions 2, 4, 6, 8). */
	for (int i = 0; i < 8; i++)
	{
		int			d = s[i] - '0';

		if (i % 2 == 1)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return (10 - sum % 10) % 10 == s[8] - '0';
}

bool
carm_bn15_is_valid(const char *s)
{
	char		bn9[10];

	if (strlen(s) != 15)
		return false;
	memcpy(bn9, s, 9);
	bn9[9] = '\0';
	if (!carm_bn9_is_valid(bn9) || s[9] != 'R' || s[10] != 'M')
		return false;
	for (int i = 11; i < 15; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* carm_internal.bn9_is_valid(text) — used by CHECK constraints and the API. */
Datum
carm_bn9_valid_sql(PG_FUNCTION_ARGS)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(carm_bn9_is_valid(s));
}

/* carm_internal.bn15_is_valid(text) */
Datum
carm_bn15_valid_sql(PG_FUNCTION_ARGS)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(carm_bn15_is_valid(s));
}
