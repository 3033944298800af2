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
