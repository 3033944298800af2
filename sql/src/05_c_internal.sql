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

-- Statement-level trigger on every delegation-state table: makes every
-- backend's grant cache stale when the change commits (README "Cache").
CREATE OR REPLACE FUNCTION carm_internal.invalidate_cache() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_invalidate_cache';
