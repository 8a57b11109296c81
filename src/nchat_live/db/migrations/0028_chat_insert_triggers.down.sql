-- 0026's chat_message_rules, and the triggers as 0011 and 0025 made them.
CREATE OR REPLACE FUNCTION nchat.chat_message_rules()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $$
DECLARE
  s record;
  at timestamptz;
  manager boolean;
  last_at timestamptz;
  nth_at timestamptz;
  max_n integer;
  window_s numeric;
  wait numeric;
BEGIN
  IF NOT nchat.rules_apply(NEW.user_id, NEW.stream_id) THEN
    -- chat_moderation_rules' insert: a message is visible unless the rules below hold it (admins excepted).
    IF NOT nchat.is_admin() THEN
      NEW.status := 'visible';
    END IF;
    RETURN NEW;
  END IF;
  NEW.content := nchat.clean_text(NEW.content, 'content', 500);
  -- Serialises this user's sends to this stream (across API processes) so the counts below are exact.
  PERFORM pg_advisory_xact_lock(hashtextextended('chat:' || NEW.user_id || ':' || NEW.stream_id, 0));
  at := nchat.rule_clock();
  NEW.created_at := at;
  SELECT id, channel_id, broadcaster_id, status, enable_chat, chat_mode, slow_mode_seconds INTO s
    FROM nchat_streams WHERE id = NEW.stream_id;
  IF s.status <> 'live' THEN
    PERFORM nchat.refuse(409, 'stream-not-live', format('cannot chat: the stream is ''%s'', not ''live''', s.status));
  END IF;
  IF NOT s.enable_chat THEN
    PERFORM nchat.refuse(403, 'chat-disabled', 'chat is disabled for this stream');
  END IF;
  PERFORM nchat.check_not_banned(s.id, s.channel_id, NEW.user_id, at);
  -- The broadcaster and the channel's staff are exempt from the chat mode and slow mode.
  manager := nchat.can_manage_stream(s.id);
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
  -- chat_moderation_rules' insert (0015), which ran next as a trigger of its own and asked again what was
  -- known here (rules_apply, can_manage_stream, the stream's channel, the clock): the channel's rules, after
  -- every rule above, for a sender who is not the stream's manager.
  NEW.status := 'visible';
  IF NOT manager AND NOT NEW.is_deleted
     AND nchat.chat_verdict(s.channel_id, NEW.user_id, NEW.content, at) = 'held' THEN
    NEW.status := 'held';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER a0_preset_caller ON nchat_stream_chat_messages;
CREATE TRIGGER a0_preset_caller BEFORE INSERT ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.preset_caller();

DROP TRIGGER nchat_stream_chat_messages_removed_content_update ON nchat_stream_chat_messages;
DROP TRIGGER nchat_stream_chat_messages_removed_content ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_removed_content BEFORE INSERT OR UPDATE ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_removed_content();

DROP TRIGGER nchat_stream_chat_messages_private_flag ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_private_flag BEFORE INSERT OR UPDATE OF stream_id
  ON nchat_stream_chat_messages FOR EACH ROW EXECUTE FUNCTION nchat.message_private_flag();
