-- Catalog fingerprint of extension carm_deleg (SPEC §12 "Upgrades"), used by
-- test/cluster/upgrade.sh to compare a database updated from 1.0 with a fresh
-- install.  pg_dump does not dump extension members, so this lists them
-- itself: every object that is a member of the extension (pg_depend deptype
-- 'e') and their sub-objects, one line per fact, "kind|object|property|value".
-- Never prints an oid; sorted bytewise, so two databases print the same text
-- exactly when their extension objects are the same.
--
-- ACLs are printed as the effective privileges (the default when the column
-- is NULL), item by item in sorted order: the order in which grants happened
-- to be made, or an explicit ACL equal to the default, are not differences.
-- Columns are numbered by their position among the live columns (a column
-- dropped by an upgrade leaves a hole in attnum that changes nothing).
SET search_path = pg_catalog;

WITH ext AS (
  SELECT x.oid, x.extname, x.extversion, x.extrelocatable, x.extconfig, x.extcondition,
         n.nspname
  FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
  WHERE x.extname = 'carm_deleg'
),
member AS (
  SELECT d.classid, d.objid
  FROM pg_depend d JOIN ext ON d.refobjid = ext.oid
  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
),
-- the extension's schemas: its members, and the schema it is installed in
nsp AS (
  SELECT n.oid, n.nspname FROM pg_namespace n
  WHERE n.oid IN (SELECT objid FROM member WHERE classid = 'pg_namespace'::regclass)
     OR n.nspname = (SELECT nspname FROM ext)
),
fn AS (
  SELECT p.*, format('%I.%I(%s)', n.nspname, p.proname,
                     pg_get_function_identity_arguments(p.oid)) AS ident
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE p.oid IN (SELECT objid FROM member WHERE classid = 'pg_proc'::regclass)
),
rel AS (
  SELECT c.*, format('%I.%I', n.nspname, c.relname) AS ident
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass)
  UNION
  -- sequences behind identity and serial columns of member tables
  SELECT s.*, format('%I.%I', n.nspname, s.relname)
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_namespace n ON n.oid = s.relnamespace
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.deptype IN ('a', 'i')
    AND d.refobjid IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass)
),
typ AS (
  SELECT t.*, format_type(t.oid, NULL) AS ident
  FROM pg_type t
  WHERE t.oid IN (SELECT objid FROM member WHERE classid = 'pg_type'::regclass)
),
lines(line) AS (
  -- the extension itself
  SELECT format('extension|%s|schema|%s', extname, nspname) FROM ext
  UNION ALL SELECT format('extension|%s|version|%s', extname, extversion) FROM ext
  UNION ALL SELECT format('extension|%s|relocatable|%s', extname, extrelocatable) FROM ext
  UNION ALL
  SELECT format('extension|%s|config|%s|%s', ext.extname, c.tbl::regclass::text,
                coalesce(ext.extcondition[c.ord], '<none>'))
  FROM ext, unnest(ext.extconfig) WITH ORDINALITY AS c(tbl, ord)

  -- every member, by its identity
  UNION ALL
  SELECT format('member|%s|%s', o.type, o.identity)
  FROM member m, pg_identify_object(m.classid, m.objid, 0) o

  -- schemas
  UNION ALL
  SELECT format('schema|%I|acl|%s', n.nspname,
                (SELECT string_agg(a::text, ',' ORDER BY a::text)
                 FROM unnest(coalesce(s.nspacl, acldefault('n', s.nspowner))) a))
  FROM nsp n JOIN pg_namespace s ON s.oid = n.oid
  UNION ALL
  SELECT format('schema|%I|comment|%s', n.nspname, obj_description(n.oid, 'pg_namespace'))
  FROM nsp n

  -- functions
  UNION ALL
  SELECT format('function|%s|definition|%s', f.ident,
                CASE WHEN f.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(f.oid)
                     ELSE format('kind %s returns %s', f.prokind, format_type(f.prorettype, NULL)) END)
  FROM fn f
  UNION ALL
  SELECT format('function|%s|acl|%s', f.ident,
                (SELECT string_agg(a::text, ',' ORDER BY a::text)
                 FROM unnest(coalesce(f.proacl, acldefault('f', f.proowner))) a))
  FROM fn f
  UNION ALL
  SELECT format('function|%s|security definer|%s', f.ident, f.prosecdef) FROM fn f
  UNION ALL
  SELECT format('function|%s|config|%s', f.ident, f.proconfig) FROM fn f
  UNION ALL
  SELECT format('function|%s|support|%s', f.ident, f.prosupport::regproc) FROM fn f
  UNION ALL
  SELECT format('function|%s|comment|%s', f.ident, obj_description(f.oid, 'pg_proc')) FROM fn f

  -- relations: kind, flags, options, ACL, comment
  UNION ALL
  SELECT format('relation|%s|kind|%s persistence %s', r.ident, r.relkind, r.relpersistence) FROM rel r
  UNION ALL
  SELECT format('relation|%s|row security|enabled %s forced %s', r.ident,
                r.relrowsecurity, r.relforcerowsecurity) FROM rel r
  UNION ALL
  SELECT format('relation|%s|options|%s replica identity %s', r.ident, r.reloptions, r.relreplident)
  FROM rel r
  UNION ALL
  SELECT format('relation|%s|acl|%s', r.ident,
                (SELECT string_agg(a::text, ',' ORDER BY a::text)
                 FROM unnest(coalesce(r.relacl,
                                      acldefault(CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                                 r.relowner))) a))
  FROM rel r
  UNION ALL
  SELECT format('relation|%s|comment|%s', r.ident, obj_description(r.oid, 'pg_class')) FROM rel r

  -- columns, in order, with type, NOT NULL, default, identity, generation, ACL, comment
  UNION ALL
  SELECT format('relation|%s|column %s|%I %s%s%s%s%s%s', r.ident,
                row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum),
                a.attname, format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END,
                CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END,
                CASE WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END,
                CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                     THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END)
  FROM rel r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f')
  UNION ALL
  SELECT format('relation|%s|column %I|acl|%s', r.ident, a.attname,
                (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x))
  FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE a.attacl IS NOT NULL
  UNION ALL
  SELECT format('relation|%s|column %I|comment|%s', r.ident, a.attname,
                col_description(r.oid, a.attnum))
  FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE col_description(r.oid, a.attnum) IS NOT NULL

  -- constraints, indexes, triggers, policies, rules
  UNION ALL
  SELECT format('relation|%s|constraint %I|%s%s', r.ident, c.conname, pg_get_constraintdef(c.oid),
                CASE WHEN c.condeferrable THEN ' deferrable' ELSE '' END)
  FROM rel r JOIN pg_constraint c ON c.conrelid = r.oid
  UNION ALL
  SELECT format('relation|%s|index|%s%s', r.ident, pg_get_indexdef(i.indexrelid),
                CASE WHEN i.indisclustered THEN ' clustered' ELSE '' END)
  FROM rel r JOIN pg_index i ON i.indrelid = r.oid
  UNION ALL
  SELECT format('relation|%s|trigger|%s%s', r.ident, pg_get_triggerdef(tg.oid),
                CASE WHEN tg.tgenabled <> 'O' THEN ' enabled ' || tg.tgenabled::text ELSE '' END)
  FROM rel r JOIN pg_trigger tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal
  UNION ALL
  SELECT format('relation|%s|policy %I|%s %s to %s using %s check %s', r.ident, p.polname,
                p.polcmd, CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                (SELECT string_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END, ','
                                   ORDER BY 1) FROM unnest(p.polroles) x),
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM rel r JOIN pg_policy p ON p.polrelid = r.oid
  UNION ALL
  SELECT format('relation|%s|rule %I|%s', r.ident, rw.rulename, pg_get_ruledef(rw.oid))
  FROM rel r JOIN pg_rewrite rw ON rw.ev_class = r.oid
  WHERE r.relkind <> 'v'

  -- views
  UNION ALL
  SELECT format('relation|%s|view|%s', r.ident, pg_get_viewdef(r.oid))
  FROM rel r WHERE r.relkind IN ('v', 'm')

  -- sequences (their parameters and owner column; never their value)
  UNION ALL
  SELECT format('relation|%s|sequence|%s start %s increment %s min %s max %s cache %s cycle %s owned by %s',
                r.ident, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
                s.seqmax, s.seqcache, s.seqcycle,
                (SELECT string_agg(format('%s.%I (%s)', d.refobjid::regclass, a.attname, d.deptype), ',')
                 FROM pg_depend d
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
  FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid

  -- types (enums, domains, composites, ranges, base types)
  UNION ALL
  SELECT format('type|%s|kind %s|%s', t.ident, t.typtype,
                CASE t.typtype
                  WHEN 'e' THEN (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
                                 FROM pg_enum e WHERE e.enumtypid = t.oid)
                  WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod)
                                || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
                                || coalesce(' default ' || t.typdefault, '')
                  WHEN 'c' THEN (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                                                   ', ' ORDER BY a.attnum)
                                 FROM pg_attribute a
                                 WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
                  ELSE format('input %s output %s', t.typinput, t.typoutput) END)
  FROM typ t
  UNION ALL
  SELECT format('type|%s|constraint %I|%s', t.ident, c.conname, pg_get_constraintdef(c.oid))
  FROM typ t JOIN pg_constraint c ON c.contypid = t.oid
  UNION ALL
  SELECT format('type|%s|acl|%s', t.ident,
                (SELECT string_agg(a::text, ',' ORDER BY a::text)
                 FROM unnest(coalesce(t.typacl, acldefault('T', t.typowner))) a))
  FROM typ t
  UNION ALL
  SELECT format('type|%s|comment|%s', t.ident, obj_description(t.oid, 'pg_type')) FROM typ t

  -- event triggers
  UNION ALL
  SELECT format('event trigger|%I|%s %s tags %s enabled %s', e.evtname, e.evtevent,
                e.evtfoid::regprocedure, e.evttags, e.evtenabled)
  FROM pg_event_trigger e
  WHERE e.oid IN (SELECT objid FROM member WHERE classid = 'pg_event_trigger'::regclass)
  UNION ALL
  SELECT format('event trigger|%I|comment|%s', e.evtname, obj_description(e.oid, 'pg_event_trigger'))
  FROM pg_event_trigger e
  WHERE e.oid IN (SELECT objid FROM member WHERE classid = 'pg_event_trigger'::regclass)

  -- objects in the extension's schemas that are not members of it (left
  -- behind, or created outside the extension's scripts)
  UNION ALL
  SELECT format('stray|%s|%s', o.type, o.identity)
  FROM (SELECT 'pg_class'::regclass, c.oid FROM pg_class c
        WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
        UNION ALL
        SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM nsp)
        UNION ALL
        SELECT 'pg_type'::regclass, t.oid FROM pg_type t
        WHERE t.typnamespace IN (SELECT oid FROM nsp) AND t.typtype IN ('e', 'd', 'r', 'b')
          AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)   -- implicit array types
        UNION ALL
        SELECT 'pg_operator'::regclass, o.oid FROM pg_operator o WHERE o.oprnamespace IN (SELECT oid FROM nsp)
       ) AS x(classid, objid)
  CROSS JOIN LATERAL pg_identify_object(x.classid, x.objid, 0) o
  WHERE (x.classid, x.objid) NOT IN (SELECT classid, objid FROM member)

  -- casts, operators and other members are named by the member lines above
)
-- A multi-line value (a function's definition) repeats its object on every
-- line, so that any line of a diff says where it comes from.
SELECT regexp_replace(line, E'\n',
                      E'\n' || coalesce((regexp_match(line, '^([^|]*\|[^|]*\|[^|]*)\|'))[1], '') || '|+ ', 'g')
FROM lines
ORDER BY line COLLATE "C";
