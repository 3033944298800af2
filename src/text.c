/*
 * text.c — what counts as blank in an argument (SPEC §10, G2, R1, R4, E4,
 * E5, R7): the one rule by which the API trims names, comments, reasons and
 * role names and tells a blank one from a real one.
 *
 * Blank is any run of Unicode white space (the White_Space property: tab,
 * line feed and the other C0 separators, NEL, no-break space U+00A0, the
 * U+2000 spaces, the line and paragraph separators, the ideographic space…)
 * and of the characters that display as nothing (zero width space, word
 * joiner, byte order mark).  In a database whose encoding is not UTF-8 only
 * ASCII white space is known.  Pure functions, no catalog access.
 */
#include "carm_deleg.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(carm_trim_blank_sql);

/* True for a code point the API treats as blank. */
static bool
carm_is_blank_char(pg_wchar c)
{
	if (c == ' ' || (c >= 0x09 && c <= 0x0D))
		return true;
	if (c < 0x80)
		return false;
	switch (c)
	{
		case 0x0085:			/* next line */
		case 0x00A0:			/* no-break space */
		case 0x1680:			/* ogham space mark */
		case 0x180E:			/* mongolian vowel separator */
		case 0x200B:			/* zero width space */
		case 0x2028:			/* line separator */
		case 0x2029:			/* paragraph separator */
		case 0x202F:			/* narrow no-break space */
		case 0x205F:			/* medium mathematical space */
		case 0x2060:			/* word joiner */
		case 0x3000:			/* ideographic space */
		case 0xFEFF:			/* zero width no-break space (BOM) */
			return true;
		default:
			return c >= 0x2000 && c <= 0x200A;	/* en quad .. hair space */
	}
}

/*
 * The part of s[0..len) between its leading and trailing blanks, as a byte
 * offset and length (length 0 when s is blank).  s need not be terminated.
 */
void
carm_trim_blank(const char *s, int len, int *start, int *trimmed_len)
{
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	int			pos = 0;
	int			first = -1;
	int			end = 0;

	while (pos < len)
	{
		int			n = utf8 ? pg_utf_mblen((const unsigned char *) s + pos) : 1;
		pg_wchar	c;

		if (n > len - pos)
			n = len - pos;		/* truncated sequence: not blank */
		if (utf8 && n > 1)
			c = utf8_to_unicode((const unsigned char *) s + pos);
		else
			c = (unsigned char) s[pos];
		if (!(n == 1 ? c < 0x80 && carm_is_blank_char(c) : carm_is_blank_char(c)))
		{
			if (first < 0)
				first = pos;
			end = pos + n;
		}
		pos += n;
	}
	*start = first < 0 ? 0 : first;
	*trimmed_len = first < 0 ? 0 : end - first;
}

/*
 * carm_internal.trim_blank(text): the text without its leading and trailing
 * blanks; '' when it is blank.  The API's not_blank() and the bulk loads
 * refuse '' with 22023 and store what this returns.
 */
Datum
carm_trim_blank_sql(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int			start;
	int			n;

	carm_trim_blank(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &start, &n);
	if (start == 0 && n == (int) VARSIZE_ANY_EXHDR(t))
		PG_RETURN_TEXT_P(t);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(VARDATA_ANY(t) + start, n));
}
