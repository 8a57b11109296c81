-- Row-level security at (almost) no cost, for the tables added after 0014 (issue 15, follow-up). 0015-0017's
-- read policies call a helper per row (nchat.can_read_stream, can_manage_stream, can_read_channel,
-- can_moderate_channel, channel_role, poll_broadcaster): each call is a SECURITY DEFINER function, never
-- inlined, a full executor start/stop per row. They become 0014's pattern, same rules:
--
--   read with the stream    stream_id NOT IN (SELECT nchat.hidden_streams())         (0014's set)
--   read with the channel   channel_id NOT IN (SELECT nchat.hidden_channels())       (0014's set)
--   the stream's managers   (SELECT nchat.is_staff()) OR stream_id IN (SELECT nchat.managed_streams())
--   channel role in R       channel_id IN (SELECT nchat.my_channels_as(R))
--   a poll's broadcaster    poll_id IN (SELECT nchat.broadcast_polls())
--
-- Each sub-select is uncorrelated: Postgres runs it as a hashed SubPlan, built once per statement (and only
-- if a row reaches it), one hash probe per row. The new sets are the caller's own (streams they broadcast
-- or moderate, channels they hold a role in, polls of their streams), empty for an anonymous caller; staff
-- are admitted by the is_staff() test before them, as can_manage_stream/can_moderate_channel do.
-- Equivalences (every row's stream/channel/poll exists: foreign keys, NOT NULL unless said):
--   can_read_stream(x)      = staff OR x's channel is public OR a member's  = x NOT IN hidden_streams()
--   can_read_channel(x)     = staff OR x public OR a member's               = x NOT IN hidden_channels()
--   can_manage_stream(x)    = staff OR x broadcast by me OR my role in its channel is owner/admin/moderator
--   can_moderate_channel(x) = staff OR my role in x is owner/admin/moderator
--   channel_role(x) IN R    = my role in x is in R (no staff clause: the policies that use it have their own)
--   poll_broadcaster(p) = me: p's stream is broadcast by me (NULL, never true, for an anonymous caller)
-- A NULL id (a ban's stream_id or channel_id) is IN no set, as the helpers answered false for it.
--
-- Writes keep their helpers (a write touches one row; 0014 did the same): only their bare claims calls are
-- read once per statement. The policies' previous texts are in the down migration.
-- tests/security, tests/graphql/test_private_rows.py and each feature's tests hold the rules.

-- Channels where the caller's membership role is one of `roles`. Definer: memberships are read without
-- that table's policy. PL/pgSQL (plans kept for the session), as 0014's sets.
CREATE FUNCTION nchat.my_channels_as(roles text[]) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10 SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY SELECT m.channel_id FROM public.nchat_channel_members m
                WHERE m.user_id = nchat.user_id() AND m.role = ANY (roles);
END $$;

-- Streams the caller manages other than as staff: broadcast by them, or in a channel they own, administer
-- or moderate.
CREATE FUNCTION nchat.managed_streams() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10 SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
BEGIN
  IF me IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT s.id FROM public.nchat_streams s WHERE s.broadcaster_id = me
    UNION
    SELECT s.id FROM public.nchat_streams s
     WHERE s.channel_id IN (SELECT m.channel_id FROM public.nchat_channel_members m
                             WHERE m.user_id = me AND m.role IN ('owner', 'admin', 'moderator'));
END $$;

-- Polls on streams the caller broadcasts.
CREATE FUNCTION nchat.broadcast_polls() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10 SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
BEGIN
  IF me IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT p.id FROM public.nchat_stream_polls p JOIN public.nchat_streams s ON s.id = p.stream_id
     WHERE s.broadcaster_id = me;
END $$;

REVOKE ALL ON FUNCTION nchat.my_channels_as(text[]), nchat.managed_streams(), nchat.broadcast_polls() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.my_channels_as(text[]), nchat.managed_streams(), nchat.broadcast_polls()
  TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- Read with the stream (0015, 0016).
ALTER POLICY read_visible ON nchat_stream_polls USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_with_stream ON nchat_stream_engagement USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_with_stream ON nchat_stream_chapters USING (stream_id NOT IN (SELECT nchat.hidden_streams()));

-- Kept highlights with the stream, all of them to its managers (0016).
ALTER POLICY read_kept_or_manager ON nchat_stream_highlights
  USING ((status = 'kept' AND stream_id NOT IN (SELECT nchat.hidden_streams()))
         OR (SELECT nchat.is_staff()) OR stream_id IN (SELECT nchat.managed_streams()));

-- A held message: its author and the stream's managers (0015 on top of 0014).
ALTER POLICY read_visible ON nchat_stream_chat_messages
  USING (stream_id NOT IN (SELECT nchat.hidden_streams())
         AND (status = 'visible' OR user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
              OR stream_id IN (SELECT nchat.managed_streams())));

-- The stream's managers only (0001 quality metrics, which 0017 archives; 0017 simulcast).
ALTER POLICY read_manager ON nchat_stream_quality_metrics
  USING ((SELECT nchat.is_staff()) OR stream_id IN (SELECT nchat.managed_streams()));
ALTER POLICY read_manager ON nchat_stream_simulcast_destinations
  USING ((SELECT nchat.is_staff()) OR stream_id IN (SELECT nchat.managed_streams()));

-- Viewer sessions (0017's audience analytics read them): your own, or all of a stream you manage.
ALTER POLICY read_own_or_broadcaster ON nchat_stream_viewers
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR stream_id IN (SELECT nchat.managed_streams()));

-- Poll votes: your own, staff, or the poll's broadcaster (0015); claims once per statement on the writes.
ALTER POLICY read_own_or_broadcaster ON nchat_stream_poll_votes
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR poll_id IN (SELECT nchat.broadcast_polls()));
ALTER POLICY insert_self ON nchat_stream_poll_votes
  WITH CHECK (user_id = (SELECT nchat.user_id()) AND nchat.can_read_stream(nchat.poll_stream(poll_id)));
ALTER POLICY update_self ON nchat_stream_poll_votes
  USING (user_id = (SELECT nchat.user_id())) WITH CHECK (user_id = (SELECT nchat.user_id()));
ALTER POLICY insert_manager ON nchat_stream_polls
  WITH CHECK (created_by = (SELECT nchat.user_id()) AND nchat.can_manage_stream(stream_id));

-- Channel chat settings: with the channel; blocked terms and the moderation log: its moderators (0015).
ALTER POLICY read_visible ON nchat_channel_chat_settings
  USING (channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY moderators ON nchat_channel_blocked_terms
  USING ((SELECT nchat.is_staff()) OR channel_id IN (SELECT nchat.my_channels_as('{owner,admin,moderator}')));
ALTER POLICY read_moderators ON nchat_moderation_log
  USING ((SELECT nchat.is_staff()) OR channel_id IN (SELECT nchat.my_channels_as('{owner,admin,moderator}')));

-- Bans: your own, or those a stream's or channel's managers see (0001).
ALTER POLICY read_own_or_manager ON nchat_stream_bans
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR stream_id IN (SELECT nchat.managed_streams())
         OR channel_id IN (SELECT nchat.my_channels_as('{owner,admin,moderator}')));

-- Subscriptions: your own, staff, or the channel's owner and admins (0001).
ALTER POLICY read_own ON nchat_channel_subscriptions
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR channel_id IN (SELECT nchat.my_channels_as('{owner,admin}')));
