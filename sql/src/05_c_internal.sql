-- C functions used by the data model itself (CHECK constraints, triggers).

CREATE OR REPLACE FUNCTION carm_internal.bn9_is_valid(text) RETURNS boolean
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_bn9_valid_sql';
COMMENT ON FUNCTION carm_internal.bn9_is_valid(text) IS
  'True when the text is a BN9: nine digits, the last a Luhn check digit';

CREATE OR REPLACE FUNCTION carm_internal.bn15_is_valid(text) RETURNS boolean
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_bn15_valid_sql';
COMMENT ON FUNCTION carm_internal.bn15_is_valid(text) IS
  'True when the text is a BN15: a valid BN9, RM, and four digits';

-- What counts as blank (src/text.c; SPEC §10, G2, R1, R4, E4): any Unicode
-- white space, no-break spaces included.  The one rule behind not_blank(),
-- the bulk loads and role_name().
CREATE OR REPLACE FUNCTION carm_internal.trim_blank(text) RETURNS text
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_trim_blank_sql';
COMMENT ON FUNCTION carm_internal.trim_blank(text) IS
  'Internal: the text without leading and trailing white space (any Unicode white space: tab, newline, no-break space…); '''' when blank';

-- Cache invalidation (src/inval.c; the triggers are in 11_invalidation.sql).
-- Statement level: every grant of every user becomes stale at commit.
CREATE OR REPLACE FUNCTION carm_internal.invalidate_cache() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_invalidate_cache';
COMMENT ON FUNCTION carm_internal.invalidate_cache() IS
  'Trigger: at commit, every backend reloads every user''s grants';
-- Row level: the grants of the users and businesses the row names.
CREATE OR REPLACE FUNCTION carm_internal.invalidate_keys() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_invalidate_keys';
COMMENT ON FUNCTION carm_internal.invalidate_keys() IS
  'Trigger (arguments ''user:column'' or ''business:column''): at commit, every backend reloads the grants of the named users, and every user''s grants on the named businesses';

-- The names of the nine functions and of the roles, checked by the C matrix
-- (src/matrix.c), the one list the API, the checks and the views share.
CREATE OR REPLACE FUNCTION carm_internal.function_name(text) RETURNS text
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_function_name_sql';
COMMENT ON FUNCTION carm_internal.function_name(text) IS
  'Internal (§3.1): one of the nine functions; 22023 naming them otherwise';
CREATE OR REPLACE FUNCTION carm_internal.role_name(role text, kind text) RETURNS text
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_role_name_sql';
COMMENT ON FUNCTION carm_internal.role_name(text, text) IS
  'Internal: a role of one kind (employee: BAM, PAM, EDITOR, VIEWER; client or group: PPAM, PEDITOR, PVIEWER), or 22023 with the API''s message';
