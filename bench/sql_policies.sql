-- The same rules (V1-V4 for a table of function payments/statements) written
-- as plain SQL EXISTS policies over the resolver, for comparison.  The
-- querying role needs to read the delegation tables for these to work: this
-- is a benchmark database, never do this elsewhere.
\set ON_ERROR_STOP 1
CREATE FUNCTION bench.sql_actor() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT nullif(split_part(current_setting('carm_deleg.actor'), '/', 1), '')::bigint $$;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['payments_sql', 'statements_sql'] LOOP
    EXECUTE format('ALTER TABLE app.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE app.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$
      CREATE POLICY sql_select ON app.%1$I FOR SELECT USING (
        EXISTS (SELECT 1 FROM carm_internal.grants(bench.sql_actor()) g
                WHERE g.program_id = %1$I.program_id
                  AND (g.source = 'employee'
                       OR (%1$I.submitter_id = g.via_business_id
                           AND (g.source = 'closed' OR g.role = 'SPMGR' OR g.provider_bam
                                OR g.expires_at IS NULL OR g.expires_at > now()))
                       OR (g.source = 'proxy' AND g.role <> 'SPMGR'
                           AND (g.expires_at IS NULL OR g.expires_at > now())
                           AND ((%1$I.submitter_id = g.business_id AND g.see_client)
                                OR (%1$I.submitter_id <> g.business_id AND g.see_other))))))
    $p$, t);
  END LOOP;
END $$;
