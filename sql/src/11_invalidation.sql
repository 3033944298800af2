-- Which cached decisions a change makes stale (src/inval.c, docs/design.md "The
-- check and its store").  Every table the resolver carm_internal.grants() reads has
-- its triggers here, next to the list of what its rows mean; the test
-- test/sql/invalidation.sql proves that none is missing.
--
-- A row names either a user (that user's grants change, wherever they are)
-- or a business (every user's grants on that business change).  Keys are
-- sent at commit and replayed on standbys; a TRUNCATE, and the rare changes
-- whose reach a row does not tell, make everything stale.

DO $invalidation$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      -- table             keys of one row
      ('program',           ARRAY['business:business_id']),   -- E12: a program added later
      ('app_user',          ARRAY['user:id']),                -- §2: deactivated users
      ('employee',          ARRAY['user:user_id']),           -- E1-E11, and R6 for a provider's BAMs
      ('relationship',      ARRAY['business:client_id']),     -- R5-R10 for every provider employee
      ('client_assignment', ARRAY['user:user_id']),           -- R7
      ('group_client',      ARRAY['business:client_id']),     -- G3, G6, G7
      ('group_employee',    ARRAY['user:user_id'])            -- G4, G5
    ) AS x(tbl, keys)
  LOOP
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON carm.%I '
                   'FOR EACH ROW EXECUTE FUNCTION carm_internal.invalidate_keys(%s)',
                   t.tbl || '_invalidate', t.tbl,
                   (SELECT string_agg(quote_literal(k), ', ') FROM unnest(t.keys) k));
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER TRUNCATE ON carm.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.invalidate_cache()',
                   t.tbl || '_invalidate_all', t.tbl);
  END LOOP;
END
$invalidation$;

-- G8: deleting a group ends its employees' access to all its clients; a
-- login binding changes who a session acts as.  Both are rare: everything.
CREATE OR REPLACE TRIGGER client_group_invalidate_all
  AFTER UPDATE OR DELETE OR TRUNCATE ON carm.client_group
  FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.invalidate_cache();
CREATE OR REPLACE TRIGGER login_binding_invalidate_all
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carm.login_binding
  FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.invalidate_cache();
