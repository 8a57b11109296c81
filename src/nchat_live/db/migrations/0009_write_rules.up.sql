-- The rules of chat, reactions and Q&A, enforced by Postgres on every insert: the domain operations
-- (sendChatMessage, sendReaction, askQuestion) and the generic table API (insert_X / insert_X_one)
-- obey the same checks, in one place.
--
-- Scope: request roles below admin. The admin role (the server's own sessions and admin-secret
-- requests) may already change the stream, bans and follows it would be checked against, so the rules
-- guard nothing from it; seeds, imports and tests write history through it.
--
-- Refusals: SQLSTATE class NC followed by the HTTP status (NC403, NC409, NC429, NC400), MESSAGE the
-- text shown to the client, HINT 'nchat:<error code>', DETAIL the error's extensions as JSON (e.g.
-- {"retryAfterSeconds": 5.0}). db/errors.py turns any such error into NchatError(code).
--
-- Clock: for request roles created_at is the rule clock, never the client's: a client cannot
-- back-date (or post-date) a row to slip out of a rate window. The rule clock is the time, unless the
-- server set the transaction-local `nchat.now` (the domain operations pass their injectable clock
-- that way, so rate limit and slow mode are testable). Limits are `nchat.chat_max`,
-- `nchat.chat_window_s`, `nchat.reaction_max`, `nchat.reaction_window_s` with defaults below. Only
-- server code sets these: the GraphQL compiler emits no set_config, and clients send no SQL.

-- created_at is no longer the caller's to choose (0003 granted it so the domain could stamp its clock).
REVOKE INSERT (created_at) ON nchat_stream_chat_messages FROM nchat_user, nchat_moderator;
REVOKE INSERT (created_at) ON nchat_stream_reactions FROM nchat_user, nchat_moderator;
REVOKE INSERT (created_at) ON nchat_stream_questions FROM nchat_user, nchat_moderator;

-- clock_timestamp(), not now(): read after the writer's per-stream lock, it orders one sender's rows
-- as their writes were serialised, even when their transactions began in the other order.
CREATE FUNCTION nchat.rule_clock() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(nullif(current_setting('nchat.now', true), '')::timestamptz, clock_timestamp())
$$;

CREATE FUNCTION nchat.rule_setting(setting text, fallback numeric) RETURNS numeric LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting(setting, true), '')::numeric, fallback)
$$;

CREATE FUNCTION nchat.refuse(status integer, code text, message text, extensions jsonb DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'NC' || status::text, MESSAGE = message, HINT = 'nchat:' || code,
                        DETAIL = coalesce(extensions::text, '');
END $$;

-- Whitespace as Python's str.strip() sees it, once control characters are gone (tab and newline stay
-- inside the text, as in the domain's cleaning).
CREATE FUNCTION nchat.trim_space(value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT regexp_replace(value,
    '^[\u0009\u000a\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|'
    '[\u0009\u000a\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$', '', 'g')
$$;

-- Control characters other than tab/newline (and bidi/zero-width marks) break rendering and logs.
CREATE FUNCTION nchat.clean_text(value text, field text, max_length integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  cleaned text := nchat.trim_space(regexp_replace(coalesce(value, ''),
    '[\u0001-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]', '', 'g'));
BEGIN
  IF cleaned = '' THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('%s is empty; expected 1 to %s characters', field, max_length));
  END IF;
  IF length(cleaned) > max_length THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('%s has %s characters; at most %s are allowed', field, length(cleaned), max_length));
  END IF;
  RETURN cleaned;
END $$;

-- The guide's five first, then a few more (resolvers/reactions.py mirrors this list; a test checks).
CREATE FUNCTION nchat.allowed_emojis() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT ARRAY['👍', '❤️', '😂', '🔥', '🎉', '👏', '😮', '😢', '💯', '🚀']
$$;

-- The text form of the heart and skin-toned thumbs count as the listed emoji.
CREATE FUNCTION nchat.normalise_emoji(value text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v text := nchat.trim_space(coalesce(value, ''));
BEGIN
  v := CASE WHEN v = '❤' THEN '❤️' WHEN v IN ('👍🏻', '👍🏼', '👍🏽', '👍🏾', '👍🏿') THEN '👍' ELSE v END;
  IF NOT v = ANY (nchat.allowed_emojis()) THEN
    PERFORM nchat.refuse(400, 'invalid-emoji', format('emoji ''%s'' is not allowed; use one of %s',
                                                      value, array_to_string(nchat.allowed_emojis(), ' ')));
  END IF;
  RETURN v;
END $$;

-- Banned (no expiry) or timed out (with the seconds left) on the stream or its whole channel.
CREATE FUNCTION nchat.check_not_banned(p_stream uuid, p_channel uuid, p_user uuid, p_at timestamptz)
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

-- ---------------------------------------------------------------------------------------------
-- The triggers. SECURITY DEFINER: the rules read bans, follows and subscriptions the writer may not.
-- A row written as someone else or into a stream the writer cannot read is left to the insert
-- policy (permission-error), so the rules never tell such a writer anything about the stream.
-- ---------------------------------------------------------------------------------------------

-- Whether the write rules judge a row: not for admin (the server's own writes, seeds, imports), and not
-- for a write as someone else or into a stream the writer cannot read — RLS refuses those as
-- permission-error, and the rules must not reveal anything about a private stream first.
CREATE FUNCTION nchat.rules_apply(p_user uuid, p_stream uuid) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT NOT nchat.is_admin()
     AND p_user IS NOT DISTINCT FROM nchat.user_id()
     AND nchat.can_read_stream(p_stream)
$$;

CREATE FUNCTION nchat.chat_message_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_rules BEFORE INSERT ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_message_rules();

CREATE FUNCTION nchat.reaction_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
  at timestamptz;
  max_n integer;
  window_s numeric;
BEGIN
  IF NOT nchat.rules_apply(NEW.user_id, NEW.stream_id) THEN
    RETURN NEW;
  END IF;
  NEW.emoji := nchat.normalise_emoji(NEW.emoji);
  PERFORM pg_advisory_xact_lock(hashtextextended('react:' || NEW.user_id || ':' || NEW.stream_id, 0));
  at := nchat.rule_clock();
  NEW.created_at := at;
  SELECT id, channel_id, status, enable_reactions INTO s FROM nchat_streams WHERE id = NEW.stream_id;
  IF s.status <> 'live' THEN
    PERFORM nchat.refuse(409, 'stream-not-live', format('cannot react: the stream is ''%s'', not ''live''', s.status));
  END IF;
  IF NOT s.enable_reactions THEN
    PERFORM nchat.refuse(403, 'reactions-disabled', 'reactions are disabled for this stream');
  END IF;
  PERFORM nchat.check_not_banned(s.id, s.channel_id, NEW.user_id, at);
  max_n := greatest(1, nchat.rule_setting('nchat.reaction_max', 20)::integer);
  window_s := nchat.rule_setting('nchat.reaction_window_s', 10);
  IF (SELECT count(*) FROM nchat_stream_reactions r
       WHERE r.user_id = NEW.user_id AND r.stream_id = NEW.stream_id
         AND r.created_at > at - window_s * interval '1 second' AND r.created_at <= at) >= max_n THEN
    PERFORM nchat.refuse(429, 'rate-limited', format('at most %s reactions per %s s', max_n, trunc(window_s)),
                         jsonb_build_object('retryAfterSeconds', trunc(window_s)));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_reactions_rules BEFORE INSERT ON nchat_stream_reactions
  FOR EACH ROW EXECUTE FUNCTION nchat.reaction_rules();

CREATE FUNCTION nchat.question_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
  at timestamptz;
BEGIN
  IF NOT nchat.rules_apply(NEW.user_id, NEW.stream_id) THEN
    RETURN NEW;
  END IF;
  NEW.content := nchat.clean_text(NEW.content, 'content', 500);
  at := nchat.rule_clock();
  NEW.created_at := at;
  SELECT id, channel_id, status, enable_qa INTO s FROM nchat_streams WHERE id = NEW.stream_id;
  IF NOT s.enable_qa THEN
    PERFORM nchat.refuse(403, 'qa-disabled', 'Q&A is not enabled for this stream');
  END IF;
  -- Questions may come in before the stream starts (a scheduled stream's Q&A), not after it ends.
  IF s.status IN ('ended', 'cancelled', 'failed') THEN
    PERFORM nchat.refuse(409, 'stream-not-live', format('the stream is ''%s''; questions are closed', s.status));
  END IF;
  PERFORM nchat.check_not_banned(s.id, s.channel_id, NEW.user_id, at);
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_questions_rules BEFORE INSERT ON nchat_stream_questions
  FOR EACH ROW EXECUTE FUNCTION nchat.question_rules();
