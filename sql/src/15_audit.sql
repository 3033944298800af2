-- §9 audit and notifications.  Every API change calls carm_internal.audit(); events a
-- person must see also get a row in carm.notification through carm_internal.notify().

-- Publishes one audit event on channel carm_events: delivered at commit,
-- dropped on rollback, like the event itself.  The one place that shapes the
-- payload, for carm_internal.audit() and for the set-based cascades alike.
-- §9 (rev. 1.1): every role may LISTEN on any channel, so the payload is the
-- event id only, as JSON ({"id": 42}); who may read the event itself is
-- decided by carm.audit_events().
CREATE OR REPLACE FUNCTION carm_internal.publish(p_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_notify('carm_events', jsonb_build_object('id', p_id)::text);
$$;
COMMENT ON FUNCTION carm_internal.publish(bigint) IS
  'Internal (§9): publishes an audit event id on channel carm_events at commit; the payload carries the id only';

-- Appends one audit event and publishes it.  The actor is carm.actor(),
-- unless the event is made for someone else (a deferred group request is
-- attributed to its initiator when maintenance applies it).
CREATE OR REPLACE FUNCTION carm_internal.audit(p_event text,
                            p_business bigint,
                            p_other_business bigint DEFAULT NULL,
                            p_target_user bigint DEFAULT NULL,
                            p_relationship bigint DEFAULT NULL,
                            p_group bigint DEFAULT NULL,
                            p_details jsonb DEFAULT '{}',
                            p_actor bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  e carm.audit_event;
BEGIN
  INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                target_user_id, relationship_id, group_id, details)
  VALUES (coalesce(p_actor, carm.actor()), carm_internal.caller_role(), p_event, p_business,
          p_other_business, p_target_user, p_relationship, p_group, coalesce(p_details, '{}'))
  RETURNING * INTO e;
  PERFORM carm_internal.publish(e.id);
  RETURN e.id;
END
$$;

-- A notification for one person (§9: what they must see).
CREATE OR REPLACE FUNCTION carm_internal.notify(p_user bigint, p_event text, p_message text, p_audit bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  VALUES (p_user, p_event, p_message, p_audit);
END
$$;

-- The audit trail is append-only (§9).
CREATE OR REPLACE FUNCTION carm_internal.audit_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only'
    USING ERRCODE = '42501', DETAIL = format('%s on carm.audit_event refused', TG_OP);
END
$$;
CREATE OR REPLACE TRIGGER audit_event_append_only
  BEFORE UPDATE OR DELETE ON carm.audit_event
  FOR EACH ROW EXECUTE FUNCTION carm_internal.audit_append_only();
CREATE OR REPLACE TRIGGER audit_event_no_truncate
  BEFORE TRUNCATE ON carm.audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.audit_append_only();

-- The audit trail as people read it (§9): filtered by business, time range
-- [since, until) and event types; businesses as BN9s and users by their
-- sign-in identity (external_id) next to their ids.  One implementation; the
-- API carm.audit_events() dispatches to the admin or the actor variant.
CREATE OR REPLACE FUNCTION carm_internal.audit_events(bn9 text, since timestamptz, until timestamptz,
                                                      events text[], p_admin boolean)
RETURNS TABLE (id bigint, at timestamptz, event text, business text, other_business text,
               actor text, actor_id bigint, target_user text, target_user_id bigint,
               relationship_id bigint, group_id bigint, db_role name, details jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_business bigint;
  v_actor bigint;
BEGIN
  IF bn9 IS NULL THEN
    IF NOT p_admin THEN                          -- the whole trail: carm_admin only
      RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501',
        HINT = 'A business account manager reads its business''s events with carm.audit_events(bn9).';
    END IF;
  ELSE
    v_business := carm_internal.number_id(bn9, 'business');   -- 22023 malformed, P0002 unknown
    -- Two statements, not one AND: the planner evaluates the STABLE
    -- carm_internal.require_actor() while estimating the subquery, so an admin
    -- without an actor would get "no acting user".
    IF NOT p_admin THEN
      v_actor := carm_internal.require_active_actor();
      IF NOT carm_internal.bam_of(v_business, v_actor) THEN
        RAISE EXCEPTION 'permission denied: only a business account manager of % reads its audit events', left(bn9, 32)
          USING ERRCODE = '42501';
      END IF;
    END IF;
  END IF;
  IF since > until THEN
    RAISE EXCEPTION 'since is later than until' USING ERRCODE = '22023',
      HINT = 'The range is since <= at < until; either bound may be NULL.';
  END IF;
  events := carm_internal.array_arg(events, 'events');        -- §10: 22023 / 22004
  RETURN QUERY
    SELECT a.id, a.at, a.event, b1.bn9, b2.bn9, ua.external_id, a.actor_id,
           ut.external_id, a.target_user_id, a.relationship_id, a.group_id, a.db_role, a.details
    FROM carm.audit_event a
    LEFT JOIN carm.business b1 ON b1.id = a.business_id
    LEFT JOIN carm.business b2 ON b2.id = a.other_business_id
    LEFT JOIN carm.app_user ua ON ua.id = a.actor_id
    LEFT JOIN carm.app_user ut ON ut.id = a.target_user_id
    WHERE (v_business IS NULL OR a.business_id = v_business OR a.other_business_id = v_business)
      AND (since IS NULL OR a.at >= since)
      AND (until IS NULL OR a.at < until)
      AND (events IS NULL OR a.event = ANY (events))
    ORDER BY a.id;
END
$$;
COMMENT ON FUNCTION carm_internal.audit_events(text, timestamptz, timestamptz, text[], boolean) IS
  'Internal (§9): the audit events of a business (or all, for carm_admin), in a time range and of some event types, with BN9s and external ids';

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'audit_events',
  params => 'bn9 text, since timestamptz, until timestamptz, events text[]',
  api_params => 'bn9 text DEFAULT NULL, since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL, events text[] DEFAULT NULL',
  args => 'bn9, since, until, events',
  returns => 'TABLE (id bigint, at timestamptz, event text, business text, other_business text, actor text, actor_id bigint, target_user text, target_user_id bigint, relationship_id bigint, group_id bigint, db_role name, details jsonb)',
  admin_comment => 'Internal: carm.audit_events() for carm_admin (every event); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.audit_events() for the acting user (a BAM reads its business''s events), without admin powers');
COMMENT ON FUNCTION carm.audit_events(text, timestamptz, timestamptz, text[]) IS
  'The append-only audit trail (§9): events of a business for its business account managers, every event (bn9 NULL) for carm_admin; optionally in [since, until) and of the listed event types; businesses as BN9s, people as external ids';

-- §2: the actor is required, and active, before anything is read (also
-- when there is nothing to list).
CREATE OR REPLACE FUNCTION carm.my_notifications()
RETURNS TABLE (id bigint, created_at timestamptz, event text, message text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
BEGIN
  RETURN QUERY
    SELECT n.id, n.created_at, n.event, n.message
    FROM carm.notification n
    WHERE n.user_id = v_actor
    ORDER BY n.id;
END
$$;
COMMENT ON FUNCTION carm.my_notifications() IS 'The acting user''s notifications (§9)';

-- §2: the whole trail for carm_admin only; the actor variant for every
-- caller of carm.audit_events (PUBLIC, see 90_privileges).
REVOKE ALL ON FUNCTION carm_internal.audit_events_admin(text, timestamptz, timestamptz, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.audit_events_admin(text, timestamptz, timestamptz, text[]) TO carm_admin;
