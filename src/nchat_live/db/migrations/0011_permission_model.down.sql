-- Back to the grants, policies and functions of 0001/0003/0009 (the insecure model issue 12 replaced).
DROP TRIGGER IF EXISTS nchat_stream_question_votes_rules ON nchat_stream_question_votes;
DROP FUNCTION IF EXISTS nchat.question_vote_rules();
DROP TRIGGER IF EXISTS nchat_stream_recordings_deleted ON nchat_stream_recordings;
DROP FUNCTION IF EXISTS nchat.recording_deleted();
DROP FUNCTION IF EXISTS nchat.stream_rotate_key(uuid, text);
DROP FUNCTION IF EXISTS nchat.stream_prepare(uuid, text, text);
DROP FUNCTION IF EXISTS nchat.stream_transition(uuid, text, text);
DROP FUNCTION IF EXISTS nchat.stream_transition_allowed(text, text);
DROP FUNCTION IF EXISTS nchat.chat_set_pinned(uuid, boolean, timestamptz);
DROP FUNCTION IF EXISTS nchat.chat_delete(uuid, timestamptz);
DROP TRIGGER IF EXISTS nchat_stream_chat_messages_edit_rules ON nchat_stream_chat_messages;
DROP FUNCTION IF EXISTS nchat.chat_edit_rules();
DROP TRIGGER IF EXISTS nchat_stream_chat_messages_removed_content ON nchat_stream_chat_messages;
DROP FUNCTION IF EXISTS nchat.chat_removed_content();
ALTER TABLE nchat_stream_chat_messages DISABLE TRIGGER nchat_stream_chat_messages_updated_at;
UPDATE nchat_stream_chat_messages m SET content = r.content FROM nchat.chat_removed_content r WHERE r.message_id = m.id;
UPDATE nchat_stream_chat_messages SET content = '[removed]' WHERE content = '';
ALTER TABLE nchat_stream_chat_messages ENABLE TRIGGER nchat_stream_chat_messages_updated_at;
DROP TABLE IF EXISTS nchat.chat_removed_content;
ALTER TABLE nchat_stream_chat_messages DROP CONSTRAINT nchat_stream_chat_messages_content_check;
ALTER TABLE nchat_stream_chat_messages ADD CONSTRAINT nchat_stream_chat_messages_content_check
  CHECK (length(content) BETWEEN 1 AND 500);
DROP TRIGGER IF EXISTS nchat_channel_members_rules ON nchat_channel_members;
DROP FUNCTION IF EXISTS nchat.channel_member_rules();
DROP FUNCTION IF EXISTS nchat.transfer_channel_ownership(uuid, uuid);
DROP TRIGGER IF EXISTS nchat_stream_bans_rules ON nchat_stream_bans;
DROP FUNCTION IF EXISTS nchat.ban_rules();
DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE g.tgname = 'a0_preset_caller' LOOP
    EXECUTE format('DROP TRIGGER a0_preset_caller ON %I', t);
  END LOOP;
END $$;
DROP FUNCTION IF EXISTS nchat.preset_caller();
CREATE OR REPLACE FUNCTION nchat.stream_key(stream uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT s.stream_key FROM public.nchat_streams s
  WHERE s.id = stream AND (s.broadcaster_id = nchat.user_id() OR nchat.is_admin())
$$;

CREATE OR REPLACE FUNCTION nchat.check_not_banned(p_stream uuid, p_channel uuid, p_user uuid, p_at timestamptz)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  expires timestamptz;
  seconds_left integer;
BEGIN
  SELECT b.expires_at INTO expires FROM public.nchat_stream_bans b
   WHERE b.user_id = p_user AND (b.stream_id = p_stream OR b.channel_id = p_channel)
     AND (b.expires_at IS NULL OR b.expires_at > p_at)
   ORDER BY b.expires_at DESC NULLS FIRST LIMIT 1;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF expires IS NULL THEN
    PERFORM nchat.refuse(403, 'banned', 'you are banned from this stream''s chat');
  END IF;
  seconds_left := floor(extract(epoch FROM expires - p_at))::integer + 1;
  PERFORM nchat.refuse(403, 'timed-out', format('you are timed out for another %s s', seconds_left),
                       jsonb_build_object('retryAfterSeconds', seconds_left));
END $$;

-- Viewer functions and counters as in 0003.
DROP FUNCTION nchat.viewer_join(uuid, text, text, text, inet, timestamptz);
DROP FUNCTION nchat.viewer_touch(text, text, bigint, timestamptz, boolean);
DROP INDEX IF EXISTS nchat_stream_viewers_open_user_idx;
ALTER TABLE nchat_stream_viewers DROP COLUMN holders;
CREATE OR REPLACE FUNCTION nchat.viewer_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE nchat_streams
       SET total_views = total_views + 1,
           current_viewers = current_viewers + CASE WHEN NEW.left_at IS NULL THEN 1 ELSE 0 END,
           peak_viewers = greatest(peak_viewers,
                                   current_viewers + CASE WHEN NEW.left_at IS NULL THEN 1 ELSE 0 END)
     WHERE id = NEW.stream_id;
  ELSIF OLD.left_at IS NULL AND NEW.left_at IS NOT NULL THEN
    UPDATE nchat_streams SET current_viewers = greatest(0, current_viewers - 1) WHERE id = NEW.stream_id;
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION nchat.viewer_join(p_stream uuid, p_token text, p_quality text, p_user_agent text,
                                  p_ip inet, p_at timestamptz)
RETURNS SETOF nchat_stream_viewers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT nchat.can_read_stream(p_stream) THEN
    RETURN;
  END IF;
  PERFORM 1 FROM nchat_streams WHERE id = p_stream AND status = 'live' FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id, quality, user_agent, ip_address,
                                      joined_at, last_seen_at)
    VALUES (p_stream, nchat.user_id(), p_token, p_quality, p_user_agent, p_ip, p_at, p_at)
    RETURNING *;
END $$;
CREATE FUNCTION nchat.viewer_touch(p_token text, p_quality text, p_buffering_ms bigint, p_at timestamptz,
                                   p_leave boolean)
RETURNS SETOF nchat_stream_viewers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY
    UPDATE nchat_stream_viewers v
       SET last_seen_at = greatest(v.last_seen_at, p_at),
           quality = coalesce(p_quality, v.quality),
           quality_switches = v.quality_switches
             + CASE WHEN p_quality IS NOT NULL AND v.quality IS DISTINCT FROM p_quality THEN 1 ELSE 0 END,
           buffering_ms = v.buffering_ms + greatest(0, coalesce(p_buffering_ms, 0)),
           watch_duration_seconds = greatest(0, extract(epoch FROM greatest(v.last_seen_at, p_at) - v.joined_at))::int,
           left_at = CASE WHEN p_leave THEN greatest(v.last_seen_at, p_at) END
     WHERE v.viewer_session_id = p_token AND v.left_at IS NULL
       AND (v.user_id IS NULL OR v.user_id = nchat.user_id() OR nchat.is_admin())
    RETURNING v.*;
END $$;
GRANT EXECUTE ON FUNCTION nchat.viewer_join(uuid, text, text, text, inet, timestamptz),
                          nchat.viewer_touch(text, text, bigint, timestamptz, boolean)
  TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- Policies as in 0001.
DROP POLICY update_author ON nchat_stream_chat_messages;
CREATE POLICY update_author_or_manager ON nchat_stream_chat_messages FOR UPDATE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id))
  WITH CHECK (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id));
CREATE POLICY insert_self ON nchat_stream_viewers FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(stream_id));
CREATE POLICY insert_anonymous ON nchat_stream_viewers FOR INSERT TO nchat_anonymous
  WITH CHECK (user_id IS NULL AND nchat.can_read_stream(stream_id));
CREATE POLICY update_own ON nchat_stream_viewers FOR UPDATE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id))
  WITH CHECK (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id));
DROP POLICY write_manager ON nchat_stream_bans;
CREATE POLICY write_manager ON nchat_stream_bans FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (banned_by = nchat.user_id() AND user_id <> nchat.user_id() AND (
    nchat.is_staff()
    OR (stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
    OR (channel_id IS NOT NULL AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator'))));
DROP POLICY delete_manager ON nchat_stream_bans;
CREATE POLICY delete_manager ON nchat_stream_bans FOR DELETE TO nchat_user, nchat_moderator
  USING (nchat.is_staff()
         OR (stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
         OR (channel_id IS NOT NULL AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator')));
DROP FUNCTION IF EXISTS nchat.stream_channel(uuid);

-- Grants as in 0001 (+ 0009's revocation of created_at).
GRANT SELECT ON nchat_users TO nchat_user, nchat_moderator;
GRANT SELECT, INSERT, UPDATE, DELETE ON nchat_stream_recordings TO nchat_user, nchat_moderator;
GRANT SELECT ON nchat_stream_recordings TO nchat_anonymous;
GRANT SELECT ON nchat_channels, nchat_channel_members, nchat_user_follows, nchat_stream_chat_messages,
                nchat_stream_reactions, nchat_stream_questions TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT, DELETE ON nchat_user_follows TO nchat_user, nchat_moderator;
GRANT SELECT ON nchat_channel_subscriptions, nchat_stream_question_votes, nchat_stream_bans TO nchat_user, nchat_moderator;
GRANT SELECT, INSERT ON nchat_stream_quality_metrics TO nchat_user, nchat_moderator;
GRANT SELECT, INSERT, DELETE ON nchat_stream_reminders TO nchat_user, nchat_moderator;
GRANT SELECT ON nchat_stream_viewers TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, viewer_session_id, ip_address, user_agent, quality, metadata)
  ON nchat_stream_viewers TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT UPDATE (quality, last_seen_at, left_at, watch_duration_seconds, buffering_ms, quality_switches,
              sent_chat_messages, sent_reactions, metadata)
  ON nchat_stream_viewers TO nchat_user, nchat_moderator;
GRANT UPDATE (title, description, thumbnail_url, scheduled_at, status, stream_key, ingest_url,
              hls_manifest_url, dash_manifest_url, max_resolution, bitrate_kbps, fps, is_recorded, enable_chat,
              enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language, current_viewers,
              peak_viewers, total_views, total_reactions, total_chat_messages, started_at, ended_at,
              duration_seconds, recording_url, end_reason, metadata)
  ON nchat_streams TO nchat_user, nchat_moderator;
GRANT UPDATE (content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, metadata)
  ON nchat_stream_chat_messages TO nchat_user, nchat_moderator;
GRANT UPDATE (status, upvotes, answer, answered_at, answered_by) ON nchat_stream_questions TO nchat_user, nchat_moderator;
DROP FUNCTION IF EXISTS nchat.acting_as_request_role();
