-- The permission model, in one place (issue 12). In the spirit of Hasura's metadata permissions: for
-- each request role below admin (anonymous, user, moderator) and each table, the columns it may read,
-- insert and update (GRANTs, which also decide each role's GraphQL schema), the rows (policies), the
-- column presets (BEFORE triggers: broadcaster_id, user_id, owner_id, follower_id fall back to the
-- caller; banned_by is always the caller), and the server-owned state no request role writes directly.
-- src/nchat_live/db/permissions.py states the same model as data; tests/security/test_permission_matrix.py
-- checks it against this catalog, so the two cannot drift. The admin role keeps every privilege
-- (admin_all policies of 0001): it is the server's own sessions and admin-secret requests.
--
-- Server-owned state (stream status and its times, counters, keys of others, manifest/recording/ingest
-- URLs, chat moderation flags, viewer sessions, Q&A upvotes) changes only through the domain
-- operations' SECURITY DEFINER functions below, each applying the same checks as the domain, so the
-- table API and the domain give the same answer for the same act.
--
-- Guards that must not apply to those functions' own writes look at current_user: a request runs as
-- nchat_anonymous/nchat_user/nchat_moderator (SET LOCAL ROLE), while a definer function runs as the
-- schema owner. nchat.acting_as_request_role() is therefore only called from SECURITY INVOKER triggers.

CREATE FUNCTION nchat.acting_as_request_role() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT current_user IN ('nchat_anonymous', 'nchat_user', 'nchat_moderator')
$$;

-- =============================================================================================
-- 1. Grants: revoke everything from the request roles, then grant exactly the model.
-- =============================================================================================

DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'nchat\_%'
                                            AND tablename <> 'nchat_schema_migrations' LOOP
    EXECUTE format('REVOKE ALL ON %I FROM nchat_anonymous, nchat_user, nchat_moderator', t);
  END LOOP;
END $$;

-- users: public profiles; email and metadata for signed-in roles; you edit yourself.
GRANT SELECT (id, username, display_name, avatar_url, status, created_at, updated_at) ON nchat_users TO nchat_anonymous;
GRANT SELECT (id, email, username, display_name, avatar_url, status, metadata, created_at, updated_at)
  ON nchat_users TO nchat_user, nchat_moderator;
GRANT UPDATE (display_name, avatar_url, status, metadata) ON nchat_users TO nchat_user, nchat_moderator;

-- channels: owner_id is the caller (preset); only name, description, privacy and metadata change.
GRANT SELECT (id, name, slug, description, is_private, owner_id, metadata, created_at, updated_at)
  ON nchat_channels TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (id, name, slug, description, is_private, owner_id, metadata) ON nchat_channels TO nchat_user, nchat_moderator;
GRANT UPDATE (name, description, is_private, metadata) ON nchat_channels TO nchat_user, nchat_moderator;

-- channel members: the role is the only updatable column; ownership rules are the trigger's (section 5).
GRANT SELECT (id, channel_id, user_id, role, joined_at) ON nchat_channel_members TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (channel_id, user_id, role) ON nchat_channel_members TO nchat_user, nchat_moderator;
GRANT UPDATE (role) ON nchat_channel_members TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_channel_members TO nchat_user, nchat_moderator;

GRANT SELECT (follower_id, following_id, created_at) ON nchat_user_follows TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (follower_id, following_id) ON nchat_user_follows TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_user_follows TO nchat_user, nchat_moderator;

GRANT SELECT (id, channel_id, user_id, tier, expires_at, created_at) ON nchat_channel_subscriptions TO nchat_user, nchat_moderator;

-- streams: the broadcaster's settings are writable; status and its times, counters, URLs the server
-- produces, and the key (after creation) are the server's. stream_key is insertable (a Hasura client may
-- generate it) and read back through nchat.stream_key(id), the broadcaster's alone.
GRANT SELECT (id, channel_id, broadcaster_id, title, description, thumbnail_url, scheduled_at, status,
              ingest_url, hls_manifest_url, dash_manifest_url, max_resolution, bitrate_kbps, fps, is_recorded,
              enable_chat, enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language,
              current_viewers, peak_viewers, total_views, total_reactions, total_chat_messages, started_at,
              ended_at, duration_seconds, recording_url, end_reason, metadata, created_at, updated_at)
  ON nchat_streams TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (id, channel_id, broadcaster_id, title, description, thumbnail_url, scheduled_at, stream_key,
              max_resolution, bitrate_kbps, fps, is_recorded, enable_chat, enable_reactions, enable_qa,
              chat_mode, slow_mode_seconds, tags, language, metadata)
  ON nchat_streams TO nchat_user, nchat_moderator;
GRANT UPDATE (title, description, thumbnail_url, scheduled_at, max_resolution, bitrate_kbps, fps, is_recorded,
              enable_chat, enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language, metadata)
  ON nchat_streams TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_streams TO nchat_user, nchat_moderator;

-- viewer sessions: written only by nchat.viewer_join/viewer_touch (and the server); the session token,
-- address and user agent are read by admin alone.
GRANT SELECT (id, stream_id, user_id, quality, joined_at, last_seen_at, left_at, watch_duration_seconds,
              buffering_ms, quality_switches, sent_chat_messages, sent_reactions, metadata)
  ON nchat_stream_viewers TO nchat_user, nchat_moderator;

-- quality metrics: the broadcaster reports, stream managers read.
GRANT SELECT (id, stream_id, recorded_at, current_viewer_count, bitrate_kbps, upload_bitrate_kbps, fps, resolution,
              dropped_frames, latency_ms, packet_loss_percent, jitter_ms, rtt_ms, encoder_speed, health_score, metadata)
  ON nchat_stream_quality_metrics TO nchat_user, nchat_moderator;
GRANT INSERT (id, stream_id, recorded_at, current_viewer_count, bitrate_kbps, upload_bitrate_kbps, fps, resolution,
              dropped_frames, latency_ms, packet_loss_percent, jitter_ms, rtt_ms, encoder_speed, health_score, metadata)
  ON nchat_stream_quality_metrics TO nchat_user, nchat_moderator;

-- chat: authors post as themselves and edit the content of their own live messages; moderation flags
-- are the domain's (nchat.chat_delete / chat_pin / chat_unpin).
GRANT SELECT (id, stream_id, user_id, content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by,
              metadata, created_at, updated_at)
  ON nchat_stream_chat_messages TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, content, metadata) ON nchat_stream_chat_messages TO nchat_user, nchat_moderator;
GRANT UPDATE (content) ON nchat_stream_chat_messages TO nchat_user, nchat_moderator;

GRANT SELECT (id, stream_id, user_id, emoji, position_x, position_y, created_at)
  ON nchat_stream_reactions TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, emoji, position_x, position_y) ON nchat_stream_reactions TO nchat_user, nchat_moderator;

-- recordings: readable with the stream; stream managers add clips (createClip) and delete them; full
-- recordings and every update are the server's.
GRANT SELECT (id, stream_id, kind, status, url, thumbnail_url, duration_seconds, size_bytes, renditions,
              clip_start_seconds, clip_end_seconds, created_by, metadata, created_at, updated_at)
  ON nchat_stream_recordings TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (id, stream_id, kind, status, url, thumbnail_url, duration_seconds, size_bytes, renditions,
              clip_start_seconds, clip_end_seconds, created_by, metadata)
  ON nchat_stream_recordings TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_stream_recordings TO nchat_user, nchat_moderator;

-- Q&A: asked as yourself; managers answer/dismiss; upvotes is a counter (votes table).
GRANT SELECT (id, stream_id, user_id, content, status, upvotes, answer, answered_at, answered_by, created_at, updated_at)
  ON nchat_stream_questions TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, content) ON nchat_stream_questions TO nchat_user, nchat_moderator;
GRANT UPDATE (status, answer, answered_at, answered_by) ON nchat_stream_questions TO nchat_user, nchat_moderator;

GRANT SELECT (question_id, user_id, created_at) ON nchat_stream_question_votes TO nchat_user, nchat_moderator;
GRANT INSERT (question_id, user_id) ON nchat_stream_question_votes TO nchat_user, nchat_moderator;

-- bans: banned_by is the caller (preset); rights and targets are checked by policy and trigger.
GRANT SELECT (id, channel_id, stream_id, user_id, banned_by, reason, expires_at, created_at)
  ON nchat_stream_bans TO nchat_user, nchat_moderator;
GRANT INSERT (channel_id, stream_id, user_id, banned_by, reason, expires_at) ON nchat_stream_bans TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_stream_bans TO nchat_user, nchat_moderator;

GRANT SELECT (stream_id, user_id, created_at) ON nchat_stream_reminders TO nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id) ON nchat_stream_reminders TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_stream_reminders TO nchat_user, nchat_moderator;

-- =============================================================================================
-- 2. Policies that change.
-- =============================================================================================

-- A stream's channel, whatever the caller may read (for policies and rules).
CREATE FUNCTION nchat.stream_channel(stream uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT s.channel_id FROM public.nchat_streams s WHERE s.id = stream
$$;

-- Chat: only the author edits (content only, by grant), and only while the message is not deleted.
DROP POLICY update_author_or_manager ON nchat_stream_chat_messages;
CREATE POLICY update_author ON nchat_stream_chat_messages FOR UPDATE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() AND NOT is_deleted)
  WITH CHECK (user_id = nchat.user_id() AND NOT is_deleted);

-- Viewers: sessions are opened and closed by the definer functions only.
DROP POLICY insert_self ON nchat_stream_viewers;
DROP POLICY insert_anonymous ON nchat_stream_viewers;
DROP POLICY update_own ON nchat_stream_viewers;

-- Bans: a stream ban needs the right to manage that stream; a ban naming a channel (channel-wide)
-- needs the right to moderate that channel, and its stream, if named, must be in that channel.
DROP POLICY write_manager ON nchat_stream_bans;
CREATE POLICY write_manager ON nchat_stream_bans FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (banned_by = nchat.user_id() AND user_id <> nchat.user_id() AND (
    (channel_id IS NULL AND stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
    OR (channel_id IS NOT NULL AND (nchat.is_staff() OR nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator'))
        AND (stream_id IS NULL OR nchat.stream_channel(stream_id) = channel_id))));
DROP POLICY delete_manager ON nchat_stream_bans;
CREATE POLICY delete_manager ON nchat_stream_bans FOR DELETE TO nchat_user, nchat_moderator
  USING ((channel_id IS NULL AND stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
         OR (channel_id IS NOT NULL AND (nchat.is_staff() OR nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator'))));

-- Q&A votes: never on your own question.
DROP POLICY insert_self ON nchat_stream_question_votes;
CREATE POLICY insert_self ON nchat_stream_question_votes FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND EXISTS (
    SELECT 1 FROM nchat_stream_questions q WHERE q.id = question_id AND nchat.can_read_stream(q.stream_id)));

-- =============================================================================================
-- 3. Presets: a row is written in the caller's name.
-- =============================================================================================

CREATE FUNCTION nchat.preset_caller() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT nchat.acting_as_request_role() THEN
    RETURN NEW;
  END IF;
  CASE TG_TABLE_NAME
    WHEN 'nchat_streams' THEN
      NEW.broadcaster_id := coalesce(NEW.broadcaster_id, nchat.user_id());
      -- The inserting broadcaster reads her key back in the same statement (a Hasura client's
      -- insert_nchat_streams_one { stream_key }), before the row is visible to nchat.stream_key's lookup.
      PERFORM set_config('nchat.new_stream_key_' || replace(NEW.id::text, '-', ''), NEW.stream_key, true);
    WHEN 'nchat_channels' THEN NEW.owner_id := coalesce(NEW.owner_id, nchat.user_id());
    WHEN 'nchat_user_follows' THEN NEW.follower_id := coalesce(NEW.follower_id, nchat.user_id());
    WHEN 'nchat_stream_bans' THEN NEW.banned_by := nchat.user_id();
    WHEN 'nchat_stream_recordings' THEN
      NEW.created_by := nchat.user_id();
      IF NEW.kind IS DISTINCT FROM 'clip' THEN
        PERFORM nchat.refuse(403, 'permission-error', 'only the server records a stream; you may add clips');
      END IF;
    ELSE NEW.user_id := coalesce(NEW.user_id, nchat.user_id());
  END CASE;
  RETURN NEW;
END $$;

DO $$
DECLARE t text;
BEGIN
  -- "a0_" sorts first, so the write rules of 0009 see the preset.
  FOREACH t IN ARRAY ARRAY['nchat_streams', 'nchat_channels', 'nchat_user_follows', 'nchat_stream_bans',
                           'nchat_stream_chat_messages', 'nchat_stream_reactions', 'nchat_stream_questions',
                           'nchat_stream_question_votes', 'nchat_stream_reminders', 'nchat_stream_recordings'] LOOP
    EXECUTE format('CREATE TRIGGER a0_preset_caller BEFORE INSERT ON %I FOR EACH ROW EXECUTE FUNCTION nchat.preset_caller()', t);
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION nchat.stream_key(stream uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT coalesce(
    (SELECT s.stream_key FROM public.nchat_streams s
      WHERE s.id = stream AND (s.broadcaster_id = nchat.user_id() OR nchat.is_admin())),
    nullif(current_setting('nchat.new_stream_key_' || replace(stream::text, '-', ''), true), ''))
$$;

-- =============================================================================================
-- 4. Bans: the channel is the stream's; the broadcaster and the channel's owner cannot be banned there.
-- =============================================================================================

-- Definer: reads the stream and channel whatever the caller may see (the policy decides the rights).
CREATE FUNCTION nchat.ban_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
  channel uuid := NEW.channel_id;
BEGIN
  IF NEW.stream_id IS NOT NULL THEN
    SELECT id, channel_id, broadcaster_id INTO s FROM nchat_streams WHERE id = NEW.stream_id;
    IF FOUND THEN
      IF NEW.channel_id IS NOT NULL AND NEW.channel_id <> s.channel_id THEN
        PERFORM nchat.refuse(400, 'validation-failed', 'a ban''s channel must be the channel of its stream');
      END IF;
      IF NEW.user_id = s.broadcaster_id THEN
        PERFORM nchat.refuse(400, 'validation-failed', 'the broadcaster cannot be banned from their own stream');
      END IF;
      channel := s.channel_id;
    END IF;
  END IF;
  IF channel IS NOT NULL AND (
       EXISTS (SELECT 1 FROM nchat_channels c WHERE c.id = channel AND c.owner_id = NEW.user_id)
       OR EXISTS (SELECT 1 FROM nchat_channel_members m WHERE m.channel_id = channel AND m.user_id = NEW.user_id
                                                          AND m.role = 'owner')) THEN
    PERFORM nchat.refuse(400, 'validation-failed', 'the channel''s owner cannot be banned in their own channel');
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_bans_rules BEFORE INSERT OR UPDATE ON nchat_stream_bans
  FOR EACH ROW EXECUTE FUNCTION nchat.ban_rules();

-- A ban naming a stream is that stream's; one naming only a channel is channel-wide. (Before, a ban
-- carrying both matched the whole channel, whatever channel the stream was in.)
CREATE OR REPLACE FUNCTION nchat.check_not_banned(p_stream uuid, p_channel uuid, p_user uuid, p_at timestamptz)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  expires timestamptz;
  seconds_left integer;
BEGIN
  SELECT b.expires_at INTO expires FROM public.nchat_stream_bans b
   WHERE b.user_id = p_user
     AND (b.stream_id = p_stream OR (b.channel_id = p_channel AND (b.stream_id IS NULL OR EXISTS (
            SELECT 1 FROM public.nchat_streams s WHERE s.id = b.stream_id AND s.channel_id = p_channel))))
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

-- Existing bans whose channel is not their stream's become bans of the stream alone.
UPDATE nchat_stream_bans b SET channel_id = NULL FROM nchat_streams s
 WHERE b.stream_id = s.id AND b.channel_id IS DISTINCT FROM s.channel_id AND b.channel_id IS NOT NULL;

-- =============================================================================================
-- 5. Channel roles: only the owner transfers ownership; nobody else changes or removes the owner.
-- =============================================================================================

CREATE FUNCTION nchat.transfer_channel_ownership(p_channel uuid, p_new_owner uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF nchat.channel_role(p_channel) IS DISTINCT FROM 'owner' OR NOT EXISTS (
      SELECT 1 FROM nchat_channel_members m WHERE m.channel_id = p_channel AND m.user_id = p_new_owner) THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the channel''s owner can transfer ownership, to a member');
  END IF;
  UPDATE nchat_channel_members SET role = 'admin'
   WHERE channel_id = p_channel AND role = 'owner' AND user_id <> p_new_owner;
  UPDATE nchat_channels SET owner_id = p_new_owner WHERE id = p_channel;
END $$;
REVOKE ALL ON FUNCTION nchat.transfer_channel_ownership(uuid, uuid) FROM PUBLIC;

CREATE FUNCTION nchat.channel_member_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  mine text;
BEGIN
  IF NOT nchat.acting_as_request_role() THEN
    RETURN coalesce(NEW, OLD);
  END IF;
  mine := nchat.channel_role(coalesce(NEW.channel_id, OLD.channel_id));
  IF TG_OP = 'DELETE' THEN
    IF OLD.role = 'owner' THEN
      PERFORM nchat.refuse(403, 'permission-error', 'the channel''s owner cannot be removed; transfer ownership first');
    END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.role = 'owner' AND NOT (NEW.user_id = nchat.user_id() AND EXISTS (
        SELECT 1 FROM nchat_channels c WHERE c.id = NEW.channel_id AND c.owner_id = nchat.user_id())) THEN
      PERFORM nchat.refuse(403, 'permission-error', 'only the channel''s owner can make someone owner, by transferring ownership');
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.role IS DISTINCT FROM OLD.role THEN
    IF OLD.role = 'owner' THEN
      PERFORM nchat.refuse(403, 'permission-error', 'the owner''s role changes only by transferring ownership to another member');
    END IF;
    IF NEW.role = 'owner' THEN
      IF mine IS DISTINCT FROM 'owner' THEN
        PERFORM nchat.refuse(403, 'permission-error', 'only the channel''s owner can transfer ownership');
      END IF;
      PERFORM nchat.transfer_channel_ownership(NEW.channel_id, NEW.user_id);
    END IF;
  END IF;
  RETURN NEW;
END $$;
-- The transfer function is called from this invoker trigger, so the request roles need EXECUTE; it is
-- reached only through an owner's update (checked above), since clients send no SQL.
GRANT EXECUTE ON FUNCTION nchat.transfer_channel_ownership(uuid, uuid) TO nchat_user, nchat_moderator;
CREATE TRIGGER nchat_channel_members_rules BEFORE INSERT OR UPDATE OR DELETE ON nchat_channel_members
  FOR EACH ROW EXECUTE FUNCTION nchat.channel_member_rules();

-- =============================================================================================
-- 6. Chat: authors edit while not banned; deleted content is kept server-side, blanked everywhere.
-- =============================================================================================

CREATE TABLE nchat.chat_removed_content (
  message_id uuid PRIMARY KEY,
  content text NOT NULL,
  removed_at timestamptz NOT NULL DEFAULT now()
);
-- The server (admin) may read removed text (e.g. for an appeal); request roles never.
GRANT SELECT ON nchat.chat_removed_content TO nchat_admin;

ALTER TABLE nchat_stream_chat_messages DROP CONSTRAINT nchat_stream_chat_messages_content_check;
ALTER TABLE nchat_stream_chat_messages ADD CONSTRAINT nchat_stream_chat_messages_content_check
  CHECK (CASE WHEN is_deleted THEN content = '' ELSE length(content) BETWEEN 1 AND 500 END) NOT VALID;

CREATE FUNCTION nchat.chat_removed_content() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.is_deleted AND (TG_OP = 'INSERT' OR NOT OLD.is_deleted) THEN
    IF NEW.content <> '' THEN
      INSERT INTO nchat.chat_removed_content (message_id, content) VALUES (NEW.id, NEW.content)
      ON CONFLICT (message_id) DO UPDATE SET content = EXCLUDED.content, removed_at = now();
    END IF;
    NEW.content := '';
  ELSIF NEW.is_deleted THEN
    NEW.content := '';
  ELSIF TG_OP = 'UPDATE' AND OLD.is_deleted THEN
    -- Restored (admin only: no request role may change is_deleted).
    SELECT r.content INTO NEW.content FROM nchat.chat_removed_content r WHERE r.message_id = NEW.id;
    NEW.content := coalesce(NEW.content, '[removed]');
    DELETE FROM nchat.chat_removed_content WHERE message_id = NEW.id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_removed_content BEFORE INSERT OR UPDATE ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_removed_content();

INSERT INTO nchat.chat_removed_content (message_id, content)
  SELECT id, content FROM nchat_stream_chat_messages WHERE is_deleted AND content <> '';
ALTER TABLE nchat_stream_chat_messages DISABLE TRIGGER nchat_stream_chat_messages_updated_at;
UPDATE nchat_stream_chat_messages SET content = '' WHERE is_deleted AND content <> '';
ALTER TABLE nchat_stream_chat_messages ENABLE TRIGGER nchat_stream_chat_messages_updated_at;
ALTER TABLE nchat_stream_chat_messages VALIDATE CONSTRAINT nchat_stream_chat_messages_content_check;

-- An author's edit obeys the text rules and bans, as a new message would.
CREATE FUNCTION nchat.chat_edit_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  channel uuid;
BEGIN
  IF NOT nchat.acting_as_request_role() OR NEW.content IS NOT DISTINCT FROM OLD.content THEN
    RETURN NEW;
  END IF;
  NEW.content := nchat.clean_text(NEW.content, 'content', 500);
  channel := nchat.stream_channel(NEW.stream_id);
  PERFORM nchat.check_not_banned(NEW.stream_id, channel, NEW.user_id, nchat.rule_clock());
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_edit_rules BEFORE UPDATE ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_edit_rules();

-- Domain operations on moderation flags. Each returns the message, or no row when it does not exist.
CREATE FUNCTION nchat.chat_delete(p_message uuid, p_at timestamptz) RETURNS SETOF nchat_stream_chat_messages
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  m record;
BEGIN
  SELECT id, stream_id, user_id INTO m FROM nchat_stream_chat_messages WHERE id = p_message;
  IF NOT FOUND OR NOT nchat.can_read_stream(m.stream_id) THEN
    RETURN;
  END IF;
  IF m.user_id IS DISTINCT FROM nchat.user_id() AND NOT nchat.can_manage_stream(m.stream_id) THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the author or a moderator may delete this message');
  END IF;
  RETURN QUERY
    UPDATE nchat_stream_chat_messages
       SET is_deleted = true, deleted_at = coalesce(deleted_at, p_at), deleted_by = coalesce(deleted_by, nchat.user_id()),
           is_pinned = false, pinned_at = NULL, pinned_by = NULL
     WHERE id = p_message RETURNING *;
END $$;

CREATE FUNCTION nchat.chat_set_pinned(p_message uuid, p_pinned boolean, p_at timestamptz)
RETURNS SETOF nchat_stream_chat_messages
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  m record;
BEGIN
  SELECT id, stream_id, is_deleted INTO m FROM nchat_stream_chat_messages WHERE id = p_message;
  IF NOT FOUND OR NOT nchat.can_read_stream(m.stream_id) THEN
    RETURN;
  END IF;
  IF NOT nchat.can_manage_stream(m.stream_id) THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the broadcaster or a moderator of the channel may pin messages');
  END IF;
  IF p_pinned AND m.is_deleted THEN
    PERFORM nchat.refuse(400, 'message-deleted', 'a deleted message cannot be pinned');
  END IF;
  RETURN QUERY
    UPDATE nchat_stream_chat_messages
       SET is_pinned = p_pinned, pinned_at = CASE WHEN p_pinned THEN p_at END,
           pinned_by = CASE WHEN p_pinned THEN nchat.user_id() END
     WHERE id = p_message RETURNING *;
END $$;

-- =============================================================================================
-- 7. Streams: status through the state machine, key rotation, the created stream's first status.
-- =============================================================================================

CREATE FUNCTION nchat.stream_transition_allowed(current_status text, target text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  -- Mirrors resolvers/lifecycle.py TRANSITIONS (a test checks they agree).
  SELECT CASE current_status
    WHEN 'scheduled' THEN target IN ('preparing', 'live', 'cancelled', 'failed')
    WHEN 'preparing' THEN target IN ('live', 'cancelled', 'failed', 'scheduled')
    WHEN 'live' THEN target IN ('ending', 'ended', 'failed')
    WHEN 'ending' THEN target IN ('ended', 'failed')
    ELSE false END
$$;

-- Moves a stream the caller may manage to `p_target`, stamping times; ending closes viewer sessions.
CREATE FUNCTION nchat.stream_transition(p_stream uuid, p_target text, p_reason text)
RETURNS SETOF nchat_streams
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
BEGIN
  IF NOT nchat.can_manage_stream(p_stream) THEN
    RETURN;
  END IF;
  SELECT id, status INTO s FROM nchat_streams WHERE id = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF NOT nchat.stream_transition_allowed(s.status, p_target) THEN
    PERFORM nchat.refuse(409, 'invalid-transition',
                         format('a stream that is ''%s'' cannot become ''%s''', s.status, p_target));
  END IF;
  IF p_target IN ('ended', 'failed') THEN
    UPDATE nchat_stream_viewers
       SET left_at = greatest(now(), last_seen_at), holders = 0,
           watch_duration_seconds = greatest(0, extract(epoch FROM greatest(now(), last_seen_at) - joined_at))::int
     WHERE stream_id = p_stream AND left_at IS NULL;
  END IF;
  RETURN QUERY
    UPDATE nchat_streams SET
      status = p_target,
      end_reason = coalesce(p_reason, end_reason),
      started_at = CASE WHEN p_target = 'live' THEN coalesce(started_at, now()) ELSE started_at END,
      ended_at = CASE WHEN p_target IN ('ended', 'failed', 'cancelled') THEN coalesce(ended_at, now()) ELSE ended_at END,
      duration_seconds = CASE WHEN p_target = 'ended' THEN
          CASE WHEN started_at IS NULL THEN 0
               ELSE greatest(0, extract(epoch FROM coalesce(ended_at, now()) - started_at))::int END
        ELSE duration_seconds END,
      current_viewers = CASE WHEN p_target IN ('ended', 'failed') THEN 0 ELSE current_viewers END
    WHERE id = p_stream RETURNING *;
END $$;

-- The first status and ingest URL of a stream its broadcaster just created (createStream).
CREATE FUNCTION nchat.stream_prepare(p_stream uuid, p_ingest_url text, p_status text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_status NOT IN ('scheduled', 'preparing') THEN
    PERFORM nchat.refuse(400, 'validation-failed', format('a new stream cannot start as ''%s''', p_status));
  END IF;
  UPDATE nchat_streams SET ingest_url = p_ingest_url, status = p_status
   WHERE id = p_stream AND status = 'scheduled' AND started_at IS NULL
     AND (broadcaster_id = nchat.user_id() OR nchat.is_admin());
  RETURN FOUND;
END $$;

-- A new key, for the broadcaster (or admin) of a stream that is not over.
CREATE FUNCTION nchat.stream_rotate_key(p_stream uuid, p_key text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF length(p_key) < 32 THEN
    PERFORM nchat.refuse(400, 'validation-failed', 'a stream key has at least 32 characters');
  END IF;
  UPDATE nchat_streams SET stream_key = p_key
   WHERE id = p_stream AND status NOT IN ('ended', 'cancelled', 'failed')
     AND (broadcaster_id = nchat.user_id() OR nchat.is_admin());
  RETURN FOUND;
END $$;

-- Deleting a stream's full recording clears its recording URL (the caller may not write that column).
CREATE FUNCTION nchat.recording_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF OLD.kind = 'full' THEN
    UPDATE nchat_streams SET recording_url = NULL WHERE id = OLD.stream_id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_recordings_deleted AFTER DELETE ON nchat_stream_recordings
  FOR EACH ROW EXECUTE FUNCTION nchat.recording_deleted();

-- =============================================================================================
-- 8. Viewers: people, not calls. One open session per signed-in viewer per stream (and per anonymous
-- client: address + user agent), shared by that viewer's joins and counted once; at most
-- nchat.viewer_max_per_address (5) anonymous clients per address per stream. `holders` counts the
-- joins sharing a session; it closes when the last of them leaves (or on 30 s of silence).
-- =============================================================================================

ALTER TABLE nchat_stream_viewers ADD COLUMN holders integer NOT NULL DEFAULT 1 CHECK (holders >= 0);
CREATE INDEX nchat_stream_viewers_open_user_idx ON nchat_stream_viewers (stream_id, user_id) WHERE left_at IS NULL;

CREATE OR REPLACE FUNCTION nchat.viewer_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  returning_viewer boolean;
BEGIN
  IF TG_OP = 'INSERT' THEN
    -- A viewer who watched this stream before is not a new view.
    returning_viewer := EXISTS (
      SELECT 1 FROM nchat_stream_viewers v
       WHERE v.stream_id = NEW.stream_id AND v.id <> NEW.id
         AND CASE WHEN NEW.user_id IS NOT NULL THEN v.user_id = NEW.user_id
                  ELSE v.user_id IS NULL AND NEW.ip_address IS NOT NULL AND v.ip_address = NEW.ip_address
                       AND v.user_agent IS NOT DISTINCT FROM NEW.user_agent END);
    UPDATE nchat_streams
       SET total_views = total_views + CASE WHEN returning_viewer THEN 0 ELSE 1 END,
           current_viewers = current_viewers + CASE WHEN NEW.left_at IS NULL THEN 1 ELSE 0 END,
           peak_viewers = greatest(peak_viewers,
                                   current_viewers + CASE WHEN NEW.left_at IS NULL THEN 1 ELSE 0 END)
     WHERE id = NEW.stream_id;
  ELSIF OLD.left_at IS NULL AND NEW.left_at IS NOT NULL THEN
    UPDATE nchat_streams SET current_viewers = greatest(0, current_viewers - 1) WHERE id = NEW.stream_id;
  END IF;
  RETURN NULL;
END $$;

DROP FUNCTION nchat.viewer_join(uuid, text, text, text, inet, timestamptz);
CREATE FUNCTION nchat.viewer_join(p_stream uuid, p_token text, p_quality text, p_user_agent text,
                                  p_ip inet, p_at timestamptz)
RETURNS SETOF nchat_stream_viewers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
  existing uuid;
  clients integer;
BEGIN
  IF NOT nchat.can_read_stream(p_stream) THEN
    RETURN;
  END IF;
  -- Serialises with the stream ending and with this stream's other joins.
  PERFORM 1 FROM nchat_streams WHERE id = p_stream AND status = 'live' FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF me IS NOT NULL THEN
    SELECT v.id INTO existing FROM nchat_stream_viewers v
     WHERE v.stream_id = p_stream AND v.user_id = me AND v.left_at IS NULL ORDER BY v.joined_at LIMIT 1;
  ELSIF p_ip IS NOT NULL THEN
    SELECT v.id INTO existing FROM nchat_stream_viewers v
     WHERE v.stream_id = p_stream AND v.user_id IS NULL AND v.left_at IS NULL AND v.ip_address = p_ip
       AND v.user_agent IS NOT DISTINCT FROM p_user_agent ORDER BY v.joined_at LIMIT 1;
    IF existing IS NULL THEN
      SELECT count(*) INTO clients FROM nchat_stream_viewers v
       WHERE v.stream_id = p_stream AND v.user_id IS NULL AND v.left_at IS NULL AND v.ip_address = p_ip;
      IF clients >= nchat.rule_setting('nchat.viewer_max_per_address', 5) THEN
        PERFORM nchat.refuse(429, 'too-many-viewer-sessions',
                             'too many anonymous viewers from this address on this stream; sign in to watch');
      END IF;
    END IF;
  END IF;
  IF existing IS NOT NULL THEN
    RETURN QUERY
      UPDATE nchat_stream_viewers v SET holders = v.holders + 1, last_seen_at = greatest(v.last_seen_at, p_at),
                                        quality = coalesce(p_quality, v.quality)
       WHERE v.id = existing RETURNING v.*;
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id, quality, user_agent, ip_address,
                                      joined_at, last_seen_at)
    VALUES (p_stream, me, p_token, p_quality, p_user_agent, p_ip, p_at, p_at)
    RETURNING *;
END $$;

-- A heartbeat or a leave. Buffering since the previous heartbeat cannot exceed the time since it
-- (plus 5 s of clock slack), nor one hour.
DROP FUNCTION nchat.viewer_touch(text, text, bigint, timestamptz, boolean);
CREATE FUNCTION nchat.viewer_touch(p_token text, p_quality text, p_buffering_ms bigint, p_at timestamptz,
                                   p_leave boolean)
RETURNS SETOF nchat_stream_viewers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v record;
  elapsed_ms bigint;
BEGIN
  SELECT id, last_seen_at, holders INTO v FROM nchat_stream_viewers x
   WHERE x.viewer_session_id = p_token AND x.left_at IS NULL
     AND (x.user_id IS NULL OR x.user_id = nchat.user_id() OR nchat.is_admin())
   FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  elapsed_ms := greatest(0, (extract(epoch FROM p_at - v.last_seen_at) * 1000)::bigint);
  IF p_buffering_ms IS NOT NULL AND (p_buffering_ms < 0 OR p_buffering_ms > least(elapsed_ms + 5000, 3600000)) THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('bufferingMs %s is outside 0..%s (the time since the previous heartbeat)',
                                p_buffering_ms, least(elapsed_ms + 5000, 3600000)));
  END IF;
  RETURN QUERY
    UPDATE nchat_stream_viewers x
       SET last_seen_at = greatest(x.last_seen_at, p_at),
           quality = coalesce(p_quality, x.quality),
           quality_switches = x.quality_switches
             + CASE WHEN p_quality IS NOT NULL AND x.quality IS DISTINCT FROM p_quality THEN 1 ELSE 0 END,
           buffering_ms = x.buffering_ms + coalesce(p_buffering_ms, 0),
           watch_duration_seconds = greatest(0, extract(epoch FROM greatest(x.last_seen_at, p_at) - x.joined_at))::int,
           holders = CASE WHEN p_leave THEN greatest(0, x.holders - 1) ELSE x.holders END,
           left_at = CASE WHEN p_leave AND x.holders <= 1 THEN greatest(x.last_seen_at, p_at) END
     WHERE x.id = v.id
    RETURNING x.*;
END $$;

GRANT EXECUTE ON FUNCTION nchat.viewer_join(uuid, text, text, text, inet, timestamptz),
                          nchat.viewer_touch(text, text, bigint, timestamptz, boolean)
  TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- =============================================================================================
-- 9. Q&A: nobody upvotes their own question (domain and table API alike).
-- =============================================================================================

CREATE FUNCTION nchat.question_vote_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM nchat_stream_questions q WHERE q.id = NEW.question_id AND q.user_id = NEW.user_id) THEN
    PERFORM nchat.refuse(403, 'own-question', 'you cannot upvote your own question');
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_question_votes_rules BEFORE INSERT ON nchat_stream_question_votes
  FOR EACH ROW EXECUTE FUNCTION nchat.question_vote_rules();

