-- 0025's flags for the other tables whose read policies built the hidden set in every statement (issue 15):
-- with 10,000 private channels the caller is not in, "members of a channel" ran at 31x the statement without
-- RLS, all of it the set (nchat.hidden_channels() / hidden_streams(): a SECURITY DEFINER plpgsql call and
-- its query), public rows or not. Each row now carries its parent's privacy and the policy tests it first:
--
--   nchat_channel_members, nchat_channel_chat_settings     its channel's is_private
--   nchat_stream_reactions, nchat_stream_recordings,
--   nchat_stream_questions, nchat_stream_polls,
--   nchat_stream_chapters, nchat_stream_highlights         its stream's in_private_channel (0025)
--
--   policy: NOT in_private_channel OR <the old set test> (highlights: inside their 'kept' branch)
--
-- Left out: nchat_stream_engagement. The server rewrites a live stream's buckets whole every 15 s
-- (nchat.engagement_refresh: DELETE and INSERT of every bucket), so a flag trigger would run per bucket per
-- refresh for the life of every live stream: measured here at 10-16 us a row (10,000 buckets inserted in
-- 140 ms without it, 230-300 ms with it), 30-45 ms per refresh of a 4-hour stream. No resolver reads the
-- table as a request role (the highlight job reads it as the server, whose policy is `true`), only a
-- client's own GraphQL query does. It keeps the set.
--
-- 0025's argument, table by table. A flag that were wrongly true would only cost the set; one wrongly false
-- would show a private row, so every way a flag can go stale is held here:
--   - a row takes its parent's flag when inserted or moved to another parent (UPDATE OF stream_id /
--     channel_id: no request role is granted either column on these tables; the server's moves are covered).
--     The trigger is named z_private_flag so it fires after the table's other BEFORE triggers (name order)
--     and reads the parent the row ends up with;
--   - a channel made private or public passes its flag to its streams (0025), members and chat settings,
--     and a stream whose flag changed (its channel's change, or a move to another channel) to its chat
--     (0025) and to its rows in the six stream tables above;
--   - a row inserted while its parent's flag changes: the insert reads the parent's flag FOR KEY SHARE (the
--     lock its foreign key check takes on that row anyway, here before any row of its own is locked, an
--     upsert's conflicting row included), and the change first takes the parent FOR UPDATE, which waits for
--     inserts in flight under that parent to commit and makes new ones wait for it; the children are then
--     updated in statements of their own, which see every committed insert, and an insert after it reads
--     the new flag. Locks go parent before child (channel, its streams in id order, then each stream's
--     rows), and only that channel's rows wait: no table lock, so a channel owner who flips is_private in a
--     loop stalls only that channel.
--   - and (a hole in 0025 this closes) the change holds the parent FOR UPDATE before it updates it. An
--     UPDATE that changes no key column marks the old row version "keys unchanged", and a FOR KEY SHARE
--     reader of such a version, after waiting for the updater, locks and returns the version its snapshot
--     saw: a stream created while its channel was being made private took is_private = false from it and was
--     shown to everyone, and a chat message or row of a stream that was being moved into a private channel
--     likewise (tests/db/test_private_flags_more.py: both directions, every table). A version locked
--     FOR UPDATE by its updater is marked as a key update, which makes the reader follow it to the new
--     version. 0025's cascade already locked the streams so before updating them; the channel's own row
--     (user's UPDATE of is_private) and a moved stream (server's UPDATE of channel_id) take it in a BEFORE
--     trigger now (a0_private_flag_lock).
--   A transaction that holds a child row and then needs its parent can deadlock with a change of that
--   channel (an ownership transfer: member rows, then the channel; a plain UPDATE of chat settings, then its
--   log entry's key share on the channel; resolvers/automod.py's upsert locks the channel first). Postgres
--   detects it and fails one of the two; neither leaves a stale flag.
-- A flag change is not an edit: updated_at, a chat settings row's updated_by and its moderation log entry
-- ('settings-changed') are left alone (their triggers skip an update that changes the flag). The flag is
-- readable where the row is (a reader of the row may read its channel's is_private anyway) and written by
-- no request role (permissions.py).

ALTER TABLE nchat_channel_members ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_channel_chat_settings ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_reactions ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_recordings ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_questions ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_polls ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_chapters ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_highlights ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;

-- The backfill touches no other column (updated_at included), logs nothing and wakes no live query: user
-- triggers off. Streams carry their flag since 0025.
ALTER TABLE nchat_channel_members DISABLE TRIGGER USER;
ALTER TABLE nchat_channel_chat_settings DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_reactions DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_recordings DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_questions DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_polls DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_chapters DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_highlights DISABLE TRIGGER USER;
UPDATE nchat_channel_members x SET in_private_channel = true
  FROM nchat_channels c WHERE c.id = x.channel_id AND c.is_private;
UPDATE nchat_channel_chat_settings x SET in_private_channel = true
  FROM nchat_channels c WHERE c.id = x.channel_id AND c.is_private;
UPDATE nchat_stream_reactions x SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = x.stream_id AND s.in_private_channel;
UPDATE nchat_stream_recordings x SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = x.stream_id AND s.in_private_channel;
UPDATE nchat_stream_questions x SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = x.stream_id AND s.in_private_channel;
UPDATE nchat_stream_polls x SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = x.stream_id AND s.in_private_channel;
UPDATE nchat_stream_chapters x SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = x.stream_id AND s.in_private_channel;
UPDATE nchat_stream_highlights x SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = x.stream_id AND s.in_private_channel;
ALTER TABLE nchat_channel_members ENABLE TRIGGER USER;
ALTER TABLE nchat_channel_chat_settings ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_reactions ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_recordings ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_questions ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_polls ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_chapters ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_highlights ENABLE TRIGGER USER;

GRANT SELECT (in_private_channel) ON nchat_channel_members, nchat_channel_chat_settings, nchat_stream_reactions,
  nchat_stream_recordings, nchat_stream_questions, nchat_stream_polls, nchat_stream_chapters,
  nchat_stream_highlights TO nchat_anonymous, nchat_user, nchat_moderator;

-- A new or moved row of a channel: its channel's flag. Definer: the channel is read without its policy (an
-- owner adding a member to a channel they cannot otherwise see is refused by the policy, not here).
CREATE FUNCTION nchat.channel_row_private_flag() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- A channel that is not found (refused by the foreign key right after) counts as private.
  NEW.in_private_channel := coalesce((SELECT c.is_private FROM public.nchat_channels c WHERE c.id = NEW.channel_id
                                        FOR KEY SHARE), true);
  RETURN NEW;
END $$;

-- A new or moved row of a stream: its stream's flag.
CREATE FUNCTION nchat.stream_row_private_flag() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.in_private_channel := coalesce((SELECT s.in_private_channel FROM public.nchat_streams s
                                       WHERE s.id = NEW.stream_id FOR KEY SHARE), true);
  RETURN NEW;
END $$;

CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF channel_id ON nchat_channel_members
  FOR EACH ROW EXECUTE FUNCTION nchat.channel_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF channel_id ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.channel_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF stream_id ON nchat_stream_reactions
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF stream_id ON nchat_stream_recordings
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF stream_id ON nchat_stream_questions
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF stream_id ON nchat_stream_polls
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF stream_id ON nchat_stream_chapters
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_row_private_flag();
CREATE TRIGGER z_private_flag BEFORE INSERT OR UPDATE OF stream_id ON nchat_stream_highlights
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_row_private_flag();

-- A channel's privacy changed: its streams (and through the next trigger, their rows), members and chat
-- settings follow. 0025's body, and then the channel's own rows.
CREATE OR REPLACE FUNCTION nchat.channel_private_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- The UPDATE that fired this holds the row FOR NO KEY UPDATE, which a child insert's FOR KEY SHARE
  -- passes; FOR UPDATE does not. The streams are locked before any is updated: a chat insert in flight
  -- updates its stream's counters at commit, which would deadlock against a stream row updated here while
  -- the next trigger waited for that insert.
  PERFORM 1 FROM public.nchat_channels c WHERE c.id = NEW.id FOR UPDATE;
  PERFORM 1 FROM public.nchat_streams s WHERE s.channel_id = NEW.id ORDER BY s.id FOR UPDATE;
  UPDATE public.nchat_streams s SET in_private_channel = NEW.is_private
   WHERE s.channel_id = NEW.id AND s.in_private_channel IS DISTINCT FROM NEW.is_private;
  UPDATE public.nchat_channel_members m SET in_private_channel = NEW.is_private
   WHERE m.channel_id = NEW.id AND m.in_private_channel IS DISTINCT FROM NEW.is_private;
  UPDATE public.nchat_channel_chat_settings cs SET in_private_channel = NEW.is_private
   WHERE cs.channel_id = NEW.id AND cs.in_private_channel IS DISTINCT FROM NEW.is_private;
  RETURN NULL;
END $$;

-- A stream's flag changed (its channel's privacy, or a move by the server): its chat (0025) and its rows in
-- the stream tables follow.
CREATE OR REPLACE FUNCTION nchat.stream_private_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  flag boolean := NEW.in_private_channel;
BEGIN
  -- Held already where a channel's change got here; a stream moved by the server takes it now.
  PERFORM 1 FROM public.nchat_streams s WHERE s.id = NEW.id FOR UPDATE;
  UPDATE public.nchat_stream_chat_messages x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  UPDATE public.nchat_stream_reactions x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  UPDATE public.nchat_stream_recordings x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  UPDATE public.nchat_stream_questions x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  UPDATE public.nchat_stream_polls x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  UPDATE public.nchat_stream_chapters x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  UPDATE public.nchat_stream_highlights x SET in_private_channel = flag
   WHERE x.stream_id = NEW.id AND x.in_private_channel IS DISTINCT FROM flag;
  RETURN NULL;
END $$;

-- A channel's privacy or a stream's channel about to change: the row FOR UPDATE first (see the top), which
-- also waits for inserts in flight under it.
CREATE FUNCTION nchat.private_flag_lock() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_TABLE_NAME = 'nchat_channels' THEN
    PERFORM 1 FROM public.nchat_channels c WHERE c.id = OLD.id FOR UPDATE;
  ELSE
    PERFORM 1 FROM public.nchat_streams s WHERE s.id = OLD.id FOR UPDATE;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER a0_private_flag_lock BEFORE UPDATE OF is_private ON nchat_channels FOR EACH ROW
  WHEN (OLD.is_private IS DISTINCT FROM NEW.is_private) EXECUTE FUNCTION nchat.private_flag_lock();
CREATE TRIGGER a0_private_flag_lock BEFORE UPDATE OF channel_id ON nchat_streams FOR EACH ROW
  WHEN (OLD.channel_id IS DISTINCT FROM NEW.channel_id) EXECUTE FUNCTION nchat.private_flag_lock();

REVOKE ALL ON FUNCTION nchat.channel_row_private_flag(), nchat.stream_row_private_flag(), nchat.private_flag_lock()
  FROM PUBLIC;

-- A flag change is not an edit: updated_at stays. A trigger's WHEN sees NEW as the earlier BEFORE triggers
-- left it, so a move (z_private_flag fires last) still counts as an edit.
DROP TRIGGER nchat_stream_recordings_updated_at ON nchat_stream_recordings;
CREATE TRIGGER nchat_stream_recordings_updated_at BEFORE UPDATE ON nchat_stream_recordings FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_questions_updated_at ON nchat_stream_questions;
CREATE TRIGGER nchat_stream_questions_updated_at BEFORE UPDATE ON nchat_stream_questions FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_polls_updated_at ON nchat_stream_polls;
CREATE TRIGGER nchat_stream_polls_updated_at BEFORE UPDATE ON nchat_stream_polls FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER set_updated_at ON nchat_stream_chapters;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_chapters FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER set_updated_at ON nchat_stream_highlights;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_highlights FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_channel_chat_settings_updated_at ON nchat_channel_chat_settings;
CREATE TRIGGER nchat_channel_chat_settings_updated_at BEFORE UPDATE ON nchat_channel_chat_settings FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
-- Chat settings: the rules (updated_by := the caller) and the moderation log entry were INSERT OR UPDATE
-- triggers; an INSERT trigger's WHEN may not name OLD, so each is split, the UPDATE half skipping a flag
-- change (the log's AFTER trigger sees the final row: a move by the server is logged by its channel_id).
DROP TRIGGER nchat_channel_chat_settings_rules ON nchat_channel_chat_settings;
CREATE TRIGGER nchat_channel_chat_settings_rules BEFORE INSERT ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_settings_rules();
CREATE TRIGGER nchat_channel_chat_settings_rules_update BEFORE UPDATE ON nchat_channel_chat_settings FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.chat_settings_rules();
DROP TRIGGER nchat_channel_chat_settings_mod_log ON nchat_channel_chat_settings;
CREATE TRIGGER nchat_channel_chat_settings_mod_log AFTER INSERT ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.log_rule_change();
CREATE TRIGGER nchat_channel_chat_settings_mod_log_update AFTER UPDATE ON nchat_channel_chat_settings FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel OR OLD.channel_id IS DISTINCT FROM NEW.channel_id)
  EXECUTE FUNCTION nchat.log_rule_change();

-- The settings a moderator set, as before: the flag is not one of them.
CREATE OR REPLACE FUNCTION nchat.log_rule_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
  PERFORM nchat.mod_log((r ->> 'channel_id')::uuid, NULL,
                        CASE WHEN TG_TABLE_NAME = 'nchat_channel_blocked_terms'
                             THEN CASE WHEN TG_OP = 'DELETE' THEN 'term-removed' ELSE 'term-added' END
                             ELSE 'settings-changed' END,
                        NULL, NULL, r - 'channel_id' - 'in_private_channel');
  RETURN NULL;
END $$;

ALTER POLICY read_visible ON nchat_channel_members
  USING (NOT in_private_channel OR channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_channel_chat_settings
  USING (NOT in_private_channel OR channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_stream_reactions
  USING (NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_recordings
  USING (NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_questions
  USING (NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_polls
  USING (NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_with_stream ON nchat_stream_chapters
  USING (NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_kept_or_manager ON nchat_stream_highlights
  USING ((status = 'kept' AND (NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams())))
         OR (SELECT nchat.is_staff()) OR stream_id IN (SELECT nchat.managed_streams()));
