# Decisions of a filled database, recorded for comparison (sourced by
# test/cluster/upgrade.sh and test/cluster/upgrade_window.sh, after they
# define psql_as and sql and fill the database with upgrade_world.sql).
#
# record DB OUT writes one line per decision to OUT: user_has_access for
# every user, BN9 and BN15 and the 27 function.level permissions (as
# carm_admin), and for every actor the rows of two protected tables,
# has_access and accessible_programs (as a carm_gateway login, and as a
# bound login role).

PERMS="{$(for f in business_profile program_profile employee_access relationships rulings \
                   payments statements notifications banking; do
            for l in view edit manage; do printf '%s.%s,' "$f" "$l"; done; done | sed 's/,$//')}"
USERS=$(sql -c "SELECT '{' || string_agg(id::text, ',' ORDER BY id) || '}' FROM carm.app_user")
ACTORS=$(sql -c "SELECT external_id FROM carm.app_user ORDER BY id")
TARGETS=$(sql -c "SELECT '{' || string_agg(t, ',' ORDER BY t) || '}'
                  FROM (SELECT bn9 FROM carm.business UNION ALL SELECT bn15 FROM carm.program) x(t)")

# The observer: one line per decision an actor meets; a refusal is recorded
# as its SQLSTATE.  Each actor is observed in its own transaction, as an
# application does (BEGIN; set_actor; ...; COMMIT).
OBSERVER=$(cat <<'SQL'
CREATE TEMP TABLE seen (actor text, item text, answer text);
CREATE TEMP TABLE targets AS SELECT unnest(:'targets'::text[]) AS t;
CREATE TEMP TABLE perms AS SELECT unnest(:'perms'::text[]) AS p;
CREATE FUNCTION pg_temp.note(p_actor text, p_item text, p_query text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v text;
BEGIN
  BEGIN
    EXECUTE p_query INTO v;
  EXCEPTION WHEN others THEN
    v := 'ERROR ' || SQLSTATE;
  END;
  INSERT INTO pg_temp.seen VALUES (p_actor, p_item, coalesce(v, '<null>'));
END
$$;
CREATE FUNCTION pg_temp.observe(p_actor text, p_set boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF p_set THEN
    PERFORM pg_temp.note(p_actor, 'set_actor', format('SELECT carm.set_actor(%L)::text', p_actor));
  END IF;
  PERFORM pg_temp.note(p_actor, 'actor', 'SELECT carm.actor()::text');
  PERFORM pg_temp.note(p_actor, 'rows ' || tbl,
    format('SELECT count(*) || '': '' || coalesce(string_agg(id::text, '','' ORDER BY id), '''') FROM %s', tbl))
  FROM unnest('{app.payments,app.rulings}'::text[]) tbl;
  PERFORM pg_temp.note(p_actor, 'accessible_programs ' || p,
    format('SELECT coalesce(string_agg(bn15, '','' ORDER BY bn15), '''') FROM carm.accessible_programs(%L)', p))
  FROM unnest('{payments.view,payments.edit,rulings.view,banking.manage}'::text[]) p;
  FOR r IN SELECT t, p FROM pg_temp.targets, pg_temp.perms ORDER BY t, p LOOP
    PERFORM pg_temp.note(p_actor, format('has_access %s %s', r.t, r.p),
                         format('SELECT carm.has_access(%L, %L)::text', r.t, r.p));
  END LOOP;
END
$$;
SQL
)

# record DB OUT — write every decision of database DB to file OUT.
record() {
  local db=$1 out=$2 a
  {
    psql_as regress_up_admin -d "$db" -v users="$USERS" -v targets="$TARGETS" -v perms="$PERMS" <<'SQL'
SELECT format('user_has_access|%s|%s|%s|%s', u, t, p, carm.user_has_access(u, t, p))
FROM unnest(:'users'::bigint[]) u, unnest(:'targets'::text[]) t, unnest(:'perms'::text[]) p
ORDER BY u, t COLLATE "C", p COLLATE "C";
SQL
    {
      echo "$OBSERVER"
      for a in $ACTORS; do echo "BEGIN; SELECT pg_temp.observe('$a', true); COMMIT;"; done
      echo "SELECT format('gateway|%s|%s|%s', actor, item, answer) FROM seen ORDER BY actor COLLATE \"C\", item COLLATE \"C\";"
    } | psql_as regress_up_reader -d "$db" -v targets="$TARGETS" -v perms="$PERMS" | grep -v '^$'
    {
      echo "$OBSERVER"
      echo "BEGIN; SELECT pg_temp.observe('regress_up_login', false); COMMIT;"
      echo "SELECT format('bound login|%s|%s|%s', actor, item, answer) FROM seen ORDER BY actor COLLATE \"C\", item COLLATE \"C\";"
    } | psql_as regress_up_login -d "$db" -v targets="$TARGETS" -v perms="$PERMS" | grep -v '^$'
  } > "$out" 2> "$out.err"
  [ -s "$out.err" ] && { cat "$out.err" >&2; return 1; }
  return 0
}
