-- sendChatMessage's Postgres time, the insert's trigger chain (issue 15, the mutation). A user's message ran
-- chat_message_rules (0026) and three more BEFORE INSERT row triggers, and the rules called a SECURITY
-- DEFINER function with a SET search_path (a GUC save/restore each call, never inlined) or a plpgsql helper
-- for each question about the stream, each with its own probe of the stream or its channel. Per message
-- (track_functions, 2,000 sends as the app sends them): can_read_stream 2 calls, 156 us (rules_apply's and
-- insert_self's WITH CHECK), chat_verdict 148, check_not_banned 81, can_manage_stream 80,
-- message_private_flag 55, preset_caller 51, chat_removed_content 16; the BEFORE INSERT triggers were 36 %
-- of the backend's CPU samples (perf).
--
-- Now:
--  - chat_message_rules asks one query, after the advisory lock: the stream, whether the caller may read it
--    (can_read_stream's test) and manage it (can_manage_stream's), from the caller's one membership row of
--    the stream's channel; whether the caller has any ban row (check_not_banned runs only then: almost no
--    sender has one); whether the channel has automod settings or terms. Refusals, codes, messages and their
--    order are 0026's; the trigger runs as the owner those definer helpers ran as. Staff still read and
--    manage every stream, a missing one included.
--    The readability test moved from before the lock to after it: a message to a stream the sender may not
--    read (refused by insert_self's policy right after) now takes the sender's advisory lock too, and
--    content that clean_text refuses is refused once the lock is held; same refusals.
--  - chat_verdict is called only for a channel with a settings row or a blocked term: without either it
--    returns 'visible' and refuses nothing (no settings: no account-age, emote-only or link check; no terms).
--  - the message's in_private_channel (0025's message_private_flag, a trigger of its own that read the stream
--    FOR KEY SHARE) is set by this trigger from the same row, read FOR KEY SHARE as before, on every insert
--    (rules or not); message_private_flag keeps UPDATE OF stream_id.
--  - preset_caller and chat_removed_content, generic triggers that change nothing for a message with a
--    user_id and not deleted, fire only when they can: WHEN (NEW.user_id IS NULL) and WHEN (NEW.is_deleted)
--    on INSERT, WHEN (NEW.is_deleted OR OLD.is_deleted) on UPDATE (a trigger's WHEN sees NEW as the earlier
--    triggers left it, as their bodies did; the update trigger's name sorts where the shared one did).
-- insert_self's can_read_stream stays: it is the policy, and the trigger's answer only picks which refusal.
-- Measured: Postgres backend CPU per sendChatMessage (the app's set-up batch, _SEND, COMMIT as nchat_user,
-- one connection; /proc schedstat of the backend), 0027's chain and this one alternated 40 times in one
-- run (ABBA order), 200 sends each: median 1,425 -> 1,255 us (0.88x; median of the per-round ratios 0.85).
-- The BEFORE INSERT triggers: 36 % -> 26 % of the backend's CPU samples.
CREATE OR REPLACE FUNCTION nchat.chat_message_rules()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $$
DECLARE
  uid uuid;
  staff boolean;
  s record;
  at timestamptz;
  manager boolean;
  last_at timestamptz;
  nth_at timestamptz;
  max_n integer;
  window_s numeric;
  wait numeric;
BEGIN
  -- rules_apply's first two terms, in its order (is_admin, then the claim's user: a malformed claim
  -- raises for a non-admin only, as it did there).
  IF nchat.is_admin() OR NEW.user_id IS DISTINCT FROM nchat.user_id() THEN
    NEW.in_private_channel := coalesce((SELECT x.in_private_channel FROM nchat_streams x
                                         WHERE x.id = NEW.stream_id FOR KEY SHARE), true);
    IF NOT nchat.is_admin() THEN
      NEW.status := 'visible';
    END IF;
    RETURN NEW;
  END IF;
  uid := NEW.user_id;
  staff := nchat.is_staff();
  -- Serialises this user's sends to this stream (across API processes) so the counts below are exact.
  PERFORM pg_advisory_xact_lock(hashtextextended('chat:' || NEW.user_id || ':' || NEW.stream_id, 0));
  at := nchat.rule_clock();
  -- The stream and, in the same probe, what can_read_stream and can_manage_stream asked of it (the
  -- caller's one membership row of its channel), whether the caller has a ban row at all (rare: only then
  -- check_not_banned looks for the one in force) and whether the channel has automod settings or terms.
  SELECT st.id, st.channel_id, st.broadcaster_id, st.status, st.enable_chat, st.chat_mode, st.slow_mode_seconds,
         st.in_private_channel, NOT c.is_private OR m.user_id IS NOT NULL AS member_read,
         st.broadcaster_id = uid OR m.role IN ('owner', 'admin', 'moderator') AS member_manage,
         EXISTS (SELECT 1 FROM nchat_stream_bans x WHERE x.user_id = uid) AS any_ban,
         EXISTS (SELECT 1 FROM nchat_channel_chat_settings cs WHERE cs.channel_id = st.channel_id)
           OR EXISTS (SELECT 1 FROM nchat_channel_blocked_terms bt WHERE bt.channel_id = st.channel_id) AS automod
    INTO s
    FROM nchat_streams st
    JOIN nchat_channels c ON c.id = st.channel_id
    LEFT JOIN nchat_channel_members m ON m.channel_id = st.channel_id AND m.user_id = uid
   WHERE st.id = NEW.stream_id
     FOR KEY SHARE OF st;
  NEW.in_private_channel := coalesce(s.in_private_channel, true);
  -- can_read_stream: staff read every stream (a stream that does not exist included).
  IF NOT (staff OR coalesce(s.member_read, false)) THEN
    NEW.status := 'visible';
    RETURN NEW;
  END IF;
  NEW.content := nchat.clean_text(NEW.content, 'content', 500);
  NEW.created_at := at;
  IF s.status <> 'live' THEN
    PERFORM nchat.refuse(409, 'stream-not-live', format('cannot chat: the stream is ''%s'', not ''live''', s.status));
  END IF;
  IF NOT s.enable_chat THEN
    PERFORM nchat.refuse(403, 'chat-disabled', 'chat is disabled for this stream');
  END IF;
  IF s.any_ban THEN
    PERFORM nchat.check_not_banned(s.id, s.channel_id, NEW.user_id, at);
  END IF;
  -- The broadcaster and the channel's staff are exempt from the chat mode and slow mode (can_manage_stream).
  manager := staff OR coalesce(s.member_manage, false);
  IF NOT manager AND s.chat_mode = 'followers_only' AND NOT EXISTS (
      SELECT 1 FROM nchat_user_follows f WHERE f.follower_id = NEW.user_id AND f.following_id = s.broadcaster_id) THEN
    PERFORM nchat.refuse(403, 'chat-mode-followers-only', 'chat is for followers of the broadcaster only');
  END IF;
  IF NOT manager AND s.chat_mode = 'subscribers_only' AND NOT EXISTS (
      SELECT 1 FROM nchat_channel_subscriptions c WHERE c.user_id = NEW.user_id AND c.channel_id = s.channel_id
         AND (c.expires_at IS NULL OR c.expires_at > at)) THEN
    PERFORM nchat.refuse(403, 'chat-mode-subscribers-only', 'chat is for subscribers of the channel only');
  END IF;
  IF NOT manager AND s.slow_mode_seconds > 0 THEN
    SELECT max(m.created_at) INTO last_at FROM nchat_stream_chat_messages m
     WHERE m.user_id = NEW.user_id AND m.stream_id = NEW.stream_id
       AND m.created_at > at - s.slow_mode_seconds * interval '1 second' AND m.created_at <= at;
    wait := s.slow_mode_seconds - extract(epoch FROM at - last_at);
    IF wait > 0 THEN
      PERFORM nchat.refuse(429, 'slow-mode', format('slow mode is on: one message every %s s; wait %s s',
                                                    s.slow_mode_seconds, round(wait, 1)),
                           jsonb_build_object('retryAfterSeconds', round(wait, 1)));
    END IF;
  END IF;
  max_n := greatest(1, nchat.rule_setting('nchat.chat_max', 5)::integer);
  window_s := nchat.rule_setting('nchat.chat_window_s', 10);
  SELECT m.created_at INTO nth_at FROM nchat_stream_chat_messages m
   WHERE m.user_id = NEW.user_id AND m.stream_id = NEW.stream_id
     AND m.created_at > at - window_s * interval '1 second' AND m.created_at <= at
   ORDER BY m.created_at DESC OFFSET max_n - 1 LIMIT 1;
  IF FOUND THEN
    wait := extract(epoch FROM nth_at - at) + window_s;
    PERFORM nchat.refuse(429, 'rate-limited', format('at most %s messages per %s s; wait %s s',
                                                     max_n, trunc(window_s), round(wait, 1)),
                         jsonb_build_object('retryAfterSeconds', round(wait, 1)));
  END IF;
  NEW.status := 'visible';
  IF NOT manager AND NOT NEW.is_deleted AND s.automod
     AND nchat.chat_verdict(s.channel_id, NEW.user_id, NEW.content, at) = 'held' THEN
    NEW.status := 'held';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER nchat_stream_chat_messages_private_flag ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_private_flag BEFORE UPDATE OF stream_id
  ON nchat_stream_chat_messages FOR EACH ROW EXECUTE FUNCTION nchat.message_private_flag();

DROP TRIGGER nchat_stream_chat_messages_removed_content ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_removed_content BEFORE INSERT ON nchat_stream_chat_messages
  FOR EACH ROW WHEN (NEW.is_deleted) EXECUTE FUNCTION nchat.chat_removed_content();
CREATE TRIGGER nchat_stream_chat_messages_removed_content_update BEFORE UPDATE ON nchat_stream_chat_messages
  FOR EACH ROW WHEN (NEW.is_deleted OR OLD.is_deleted) EXECUTE FUNCTION nchat.chat_removed_content();

DROP TRIGGER a0_preset_caller ON nchat_stream_chat_messages;
CREATE TRIGGER a0_preset_caller BEFORE INSERT ON nchat_stream_chat_messages
  FOR EACH ROW WHEN (NEW.user_id IS NULL) EXECUTE FUNCTION nchat.preset_caller();
