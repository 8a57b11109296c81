-- 0019: guest speakers (issue 19). A stream's managers (broadcaster, channel owner/admin/moderator, staff)
-- invite signed-in users as guests; the invited user accepts or declines; managers revoke an invitation,
-- remove a guest, mute one and choose the program layout; a guest may leave. An accepted guest gets a
-- stream-scoped publish token (auth.GuestTokens) and publishes over WHIP; the media worker admits it through
-- nchat.guest_admission (server-only) and composes the program from nchat.streams' program_layout/focus.
--
-- Reads: a guest row is readable by the stream's managers and by the invited user; nobody else (a public
-- stream's viewers see guests in the picture, not in the table). Writes: request roles have no write
-- privilege on the table or on program_layout/program_focus; every change goes through the definer
-- functions below, which apply the domain's checks, so the table API (no insert/update/delete field) and
-- the domain operations (resolvers/guests.py) refuse the same acts.
--
-- Limit: invited + accepted rows per stream at most nchat.limits 'max_guests' (NCHAT_MAX_GUESTS, 3),
-- counted under the stream row's lock, so concurrent invitations cannot pass it.

CREATE TABLE nchat_stream_guests (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  invited_by uuid NOT NULL,
  status text NOT NULL DEFAULT 'invited'
    CHECK (status IN ('invited', 'accepted', 'declined', 'revoked', 'removed')),
  muted boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  responded_at timestamptz,
  UNIQUE (stream_id, user_id)
);
CREATE INDEX nchat_stream_guests_user_idx ON nchat_stream_guests (user_id);

ALTER TABLE nchat_stream_guests ENABLE ROW LEVEL SECURITY;
ALTER TABLE nchat_stream_guests FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON nchat_stream_guests TO nchat_admin;
CREATE POLICY admin_all ON nchat_stream_guests TO nchat_admin USING (true) WITH CHECK (true);

GRANT SELECT (id, stream_id, user_id, invited_by, status, muted, created_at, responded_at)
  ON nchat_stream_guests TO nchat_user, nchat_moderator;
CREATE POLICY read_manager_or_guest ON nchat_stream_guests FOR SELECT TO nchat_user, nchat_moderator
  USING (user_id = (SELECT nchat.user_id()) OR nchat.can_manage_stream(stream_id));

-- The program: which layout the compositor draws and which guest fills a 'solo' frame (null: the host).
ALTER TABLE nchat_streams
  ADD COLUMN program_layout text NOT NULL DEFAULT 'grid' CHECK (program_layout IN ('solo', 'side_by_side', 'grid')),
  ADD COLUMN program_focus uuid REFERENCES nchat_stream_guests (id) ON DELETE SET NULL;
GRANT SELECT (program_layout, program_focus) ON nchat_streams TO nchat_anonymous, nchat_user, nchat_moderator;

-- ---------------------------------------------------------------------------------------------
-- Helpers (definer functions call them as the owner; request roles may not).
-- ---------------------------------------------------------------------------------------------

-- Banned from the stream or its channel (the bans media and chat act on), not expired.
CREATE FUNCTION nchat.guest_banned(p_stream uuid, p_user uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM nchat_stream_bans b JOIN nchat_streams s ON s.id = p_stream
                  WHERE b.user_id = p_user AND (b.stream_id = s.id OR b.channel_id = s.channel_id)
                    AND (b.expires_at IS NULL OR b.expires_at > now()))
$$;

-- The guest row, locked, if the caller may see it (its invited user or a manager of its stream);
-- otherwise guest-not-found, the same answer as for an unknown id.
CREATE FUNCTION nchat.guest_lock(p_guest uuid) RETURNS nchat_stream_guests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  g nchat_stream_guests;
BEGIN
  SELECT * INTO g FROM nchat_stream_guests WHERE id = p_guest FOR UPDATE;
  IF NOT FOUND OR NOT (g.user_id = nchat.user_id() OR nchat.can_manage_stream(g.stream_id)) THEN
    PERFORM nchat.refuse(404, 'guest-not-found', format('guest ''%s'' not found', p_guest));
  END IF;
  RETURN g;
END $$;

CREATE FUNCTION nchat.guest_require_manager(p_stream uuid, action text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT nchat.can_manage_stream(p_stream) THEN
    PERFORM nchat.refuse(403, 'permission-error',
                         format('only the broadcaster or a moderator of the channel may %s', action));
  END IF;
END $$;

CREATE FUNCTION nchat.guest_require_open(p_status text, action text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_status NOT IN ('scheduled', 'preparing', 'live') THEN
    PERFORM nchat.refuse(409, 'stream-ended',
                         format('cannot %s: the stream is ''%s''; guests join scheduled, preparing or live streams',
                                action, p_status));
  END IF;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The domain's acts.
-- ---------------------------------------------------------------------------------------------

-- Invite p_user (not the caller, not the broadcaster, not banned, able to read the stream). Inviting a
-- user already invited or accepted returns their row unchanged; one who declined or was revoked/removed
-- is invited again (same row, a new invitation time).
CREATE FUNCTION nchat.guest_invite(p_stream uuid, p_user uuid) RETURNS SETOF nchat_stream_guests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
  s record;
  g nchat_stream_guests;
  max_guests numeric := nchat.limit_value('max_guests', 3);
  n bigint;
BEGIN
  -- The stream row's lock serialises invitations of one stream: the count below is exact.
  SELECT id, channel_id, broadcaster_id, status INTO s FROM nchat_streams WHERE id = p_stream FOR UPDATE;
  IF NOT FOUND OR NOT nchat.can_read_stream(p_stream) THEN
    PERFORM nchat.refuse(404, 'stream-not-found', format('stream ''%s'' not found', p_stream));
  END IF;
  PERFORM nchat.guest_require_manager(p_stream, 'invite guests');
  PERFORM nchat.guest_require_open(s.status, 'invite guests');
  IF p_user = me OR p_user = s.broadcaster_id THEN
    PERFORM nchat.refuse(400, 'validation-failed', 'the broadcaster (or you) cannot be invited as a guest');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM nchat_users u WHERE u.id = p_user) THEN
    PERFORM nchat.refuse(404, 'user-not-found', format('user ''%s'' not found', p_user));
  END IF;
  IF nchat.guest_banned(p_stream, p_user) THEN
    PERFORM nchat.refuse(403, 'guest-banned', 'the user is banned in this channel');
  END IF;
  IF EXISTS (SELECT 1 FROM nchat_channels c WHERE c.id = s.channel_id AND c.is_private)
     AND NOT EXISTS (SELECT 1 FROM nchat_channel_members m WHERE m.channel_id = s.channel_id AND m.user_id = p_user)
  THEN
    PERFORM nchat.refuse(403, 'guest-not-member',
                         'the user is not a member of this private channel; add them to the channel first');
  END IF;
  SELECT * INTO g FROM nchat_stream_guests x WHERE x.stream_id = p_stream AND x.user_id = p_user;
  IF FOUND AND g.status IN ('invited', 'accepted') THEN
    RETURN NEXT g;
    RETURN;
  END IF;
  SELECT count(*) INTO n FROM nchat_stream_guests x WHERE x.stream_id = p_stream AND x.status IN ('invited', 'accepted');
  IF n >= max_guests THEN
    PERFORM nchat.refuse(429, 'quota-exceeded',
                         format('the stream has %s guests and invitations; at most %s are allowed', n, max_guests),
                         jsonb_build_object('limit', max_guests));
  END IF;
  RETURN QUERY
    INSERT INTO nchat_stream_guests AS x (stream_id, user_id, invited_by)
    VALUES (p_stream, p_user, coalesce(me, s.broadcaster_id))
    ON CONFLICT (stream_id, user_id) DO UPDATE
      SET status = 'invited', invited_by = excluded.invited_by, muted = false, created_at = now(), responded_at = NULL
    RETURNING x.*;
END $$;

-- The invited user accepts or declines a pending invitation (answering again the same way is a no-op).
CREATE FUNCTION nchat.guest_respond(p_guest uuid, p_accept boolean) RETURNS SETOF nchat_stream_guests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  g nchat_stream_guests := nchat.guest_lock(p_guest);
  wanted text := CASE WHEN p_accept THEN 'accepted' ELSE 'declined' END;
  st text;
BEGIN
  IF g.user_id IS DISTINCT FROM nchat.user_id() THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the invited user may answer an invitation');
  END IF;
  IF g.status = wanted THEN
    RETURN NEXT g;
    RETURN;
  END IF;
  IF g.status <> 'invited' THEN
    PERFORM nchat.refuse(409, 'invitation-not-pending', format('the invitation is ''%s'', not pending', g.status));
  END IF;
  IF p_accept THEN
    SELECT status INTO st FROM nchat_streams WHERE id = g.stream_id;
    PERFORM nchat.guest_require_open(st, 'accept');
    IF nchat.guest_banned(g.stream_id, g.user_id) THEN
      PERFORM nchat.refuse(403, 'guest-banned', 'you are banned in this channel');
    END IF;
  END IF;
  RETURN QUERY UPDATE nchat_stream_guests SET status = wanted, responded_at = now() WHERE id = p_guest RETURNING *;
END $$;

-- A manager ends a guest's place: a pending invitation is revoked, an accepted guest removed. The guest
-- themself leaves with p_leave (status declined: a new invitation is needed to come back).
CREATE FUNCTION nchat.guest_remove(p_guest uuid, p_leave boolean) RETURNS SETOF nchat_stream_guests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  g nchat_stream_guests := nchat.guest_lock(p_guest);
  next_status text;
BEGIN
  IF p_leave THEN
    IF g.user_id IS DISTINCT FROM nchat.user_id() THEN
      PERFORM nchat.refuse(403, 'permission-error', 'only the guest may leave; managers remove guests');
    END IF;
    next_status := 'declined';
  ELSE
    PERFORM nchat.guest_require_manager(g.stream_id, 'remove guests');
    next_status := CASE WHEN g.status = 'accepted' THEN 'removed' ELSE 'revoked' END;
  END IF;
  IF g.status NOT IN ('invited', 'accepted') THEN
    PERFORM nchat.refuse(409, 'guest-not-active', format('the guest is already ''%s''', g.status));
  END IF;
  UPDATE nchat_streams SET program_focus = NULL WHERE id = g.stream_id AND program_focus = p_guest;
  RETURN QUERY UPDATE nchat_stream_guests SET status = next_status, responded_at = now()
                WHERE id = p_guest RETURNING *;
END $$;

CREATE FUNCTION nchat.guest_set_muted(p_guest uuid, p_muted boolean) RETURNS SETOF nchat_stream_guests
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  g nchat_stream_guests := nchat.guest_lock(p_guest);
BEGIN
  PERFORM nchat.guest_require_manager(g.stream_id, 'mute guests');
  IF g.status NOT IN ('invited', 'accepted') THEN
    PERFORM nchat.refuse(409, 'guest-not-active', format('the guest is ''%s''', g.status));
  END IF;
  RETURN QUERY UPDATE nchat_stream_guests SET muted = p_muted WHERE id = p_guest RETURNING *;
END $$;

-- The program layout and the guest a 'solo' frame shows (null: the broadcaster). Returns the two
-- columns only: a definer returning the stream row would hand the caller its stream_key.
CREATE FUNCTION nchat.stream_set_program(p_stream uuid, p_layout text, p_focus uuid)
RETURNS TABLE (program_layout text, program_focus uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM 1 FROM nchat_streams WHERE id = p_stream FOR UPDATE;
  IF NOT FOUND OR NOT nchat.can_read_stream(p_stream) THEN
    PERFORM nchat.refuse(404, 'stream-not-found', format('stream ''%s'' not found', p_stream));
  END IF;
  PERFORM nchat.guest_require_manager(p_stream, 'switch the program layout');
  IF p_layout IS NULL OR p_layout NOT IN ('solo', 'side_by_side', 'grid') THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('layout ''%s'' is not one of solo, side_by_side, grid', p_layout));
  END IF;
  IF p_focus IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM nchat_stream_guests g WHERE g.id = p_focus AND g.stream_id = p_stream AND g.status = 'accepted') THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('focusGuestId ''%s'' is not an accepted guest of this stream', p_focus));
  END IF;
  RETURN QUERY UPDATE nchat_streams s SET program_layout = p_layout, program_focus = p_focus
                WHERE s.id = p_stream RETURNING s.program_layout, s.program_focus;
END $$;

-- Whether p_user may publish as a guest of p_stream now: their row is accepted, they are not banned, the
-- stream is preparing or live. The guest id, or the refusal (the same answer at minting and at admission).
CREATE FUNCTION nchat.guest_check(p_stream uuid, p_user uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  g record;
  st text;
BEGIN
  SELECT x.id, x.status INTO g FROM nchat_stream_guests x WHERE x.stream_id = p_stream AND x.user_id = p_user;
  IF NOT FOUND OR g.status <> 'accepted' THEN
    PERFORM nchat.refuse(403, 'guest-not-accepted',
                         format('not an accepted guest of this stream: the guest is ''%s''',
                                coalesce(g.status, 'not invited')));
  END IF;
  IF nchat.guest_banned(p_stream, p_user) THEN
    PERFORM nchat.refuse(403, 'guest-banned', 'the guest is banned in this channel');
  END IF;
  SELECT s.status INTO st FROM nchat_streams s WHERE s.id = p_stream;
  IF st IS NULL OR st NOT IN ('preparing', 'live') THEN
    PERFORM nchat.refuse(409, 'stream-not-live', format('the stream is ''%s'', not preparing or live', st));
  END IF;
  RETURN g.id;
END $$;

-- The caller's guest id on p_stream when they may publish now (guestPublishToken mints a token for it).
CREATE FUNCTION nchat.guest_publish_grant(p_stream uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF nchat.user_id() IS NULL OR NOT nchat.can_read_stream(p_stream)
     OR NOT EXISTS (SELECT 1 FROM nchat_streams s WHERE s.id = p_stream) THEN
    PERFORM nchat.refuse(404, 'stream-not-found', format('stream ''%s'' not found', p_stream));
  END IF;
  RETURN nchat.guest_check(p_stream, nchat.user_id());
END $$;

-- The media worker's check of a guest publisher (a verified guest token's stream, guest and user): still
-- this user's accepted place on this stream (a revoked guest's unexpired token stops here), plus
-- guest_check. Server-only.
CREATE FUNCTION nchat.guest_admission(p_stream uuid, p_guest uuid, p_user uuid) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT nchat.is_admin() THEN
    PERFORM nchat.refuse(403, 'permission-error', 'guest admission is the media worker''s');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM nchat_stream_guests x WHERE x.id = p_guest AND x.stream_id = p_stream
                                                        AND x.user_id = p_user) THEN
    PERFORM nchat.refuse(401, 'invalid-guest-token', 'the guest token does not name a guest of this stream');
  END IF;
  PERFORM nchat.guest_check(p_stream, p_user);
END $$;

-- Function privileges (as 0018): the acts are the request roles' (they check the caller themselves);
-- the helpers and the admission are not.
REVOKE ALL ON FUNCTION
  nchat.guest_banned(uuid, uuid),
  nchat.guest_lock(uuid),
  nchat.guest_require_manager(uuid, text),
  nchat.guest_require_open(text, text),
  nchat.guest_invite(uuid, uuid),
  nchat.guest_respond(uuid, boolean),
  nchat.guest_remove(uuid, boolean),
  nchat.guest_set_muted(uuid, boolean),
  nchat.stream_set_program(uuid, text, uuid),
  nchat.guest_check(uuid, uuid),
  nchat.guest_publish_grant(uuid),
  nchat.guest_admission(uuid, uuid, uuid)
FROM PUBLIC, nchat_anonymous, nchat_user, nchat_moderator;
GRANT EXECUTE ON FUNCTION
  nchat.guest_invite(uuid, uuid),
  nchat.guest_respond(uuid, boolean),
  nchat.guest_remove(uuid, boolean),
  nchat.guest_set_muted(uuid, boolean),
  nchat.stream_set_program(uuid, text, uuid),
  nchat.guest_publish_grant(uuid)
TO nchat_user, nchat_moderator, nchat_admin;
GRANT EXECUTE ON FUNCTION
  nchat.guest_banned(uuid, uuid),
  nchat.guest_lock(uuid),
  nchat.guest_require_manager(uuid, text),
  nchat.guest_require_open(text, text),
  nchat.guest_check(uuid, uuid),
  nchat.guest_admission(uuid, uuid, uuid)
TO nchat_admin;

SELECT nchat.ensure_change_triggers();
