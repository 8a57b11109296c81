-- Reads of public rows without the hidden set (issue 15, Postgres's share of a table read). 0014's read
-- policies on streams and chat messages built the caller's hidden set (nchat.hidden_channels() /
-- hidden_streams(): a SECURITY DEFINER plpgsql call and its query) in every statement that read the table,
-- public rows or not: ~60 us of a ~160 us "live streams of a channel" read with no private channel at all,
-- and 16-19 ms per statement with 10,000 private channels the caller is not in (bench/rls_explain.py
-- --hidden-channels). The rows now carry whether their channel is private, kept by triggers, and the
-- policies test it first:
--
--   nchat_streams                NOT in_private_channel OR channel_id NOT IN (SELECT nchat.hidden_channels())
--   nchat_stream_chat_messages   NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams())
--
-- A public row passes on its own flag; the hashed SubPlan (the set) is built only when a private row
-- reaches it ("never executed" in EXPLAIN ANALYZE otherwise). Same rule: a row's flag is its channel's
-- is_private (every stream has a channel, every message a stream: foreign keys, NOT NULL), and a public
-- channel's streams are in no hidden set. A flag that were wrongly true would only cost the set; one wrongly
-- false would show a private row, so every way the flag can go stale is held here:
--   - a stream takes its channel's flag when inserted or moved (channel_id: server-owned), a message its
--     stream's when inserted (stream_id is never updated: no request role may, no server path does; the
--     trigger covers it anyway);
--   - a channel made private or public passes its flag to its streams, a stream to its messages;
--   - a stream or message inserted while its channel's flag changes: an insert reads its parent's flag
--     FOR KEY SHARE (the lock its foreign key check takes on that row anyway), and a change first takes its
--     own row FOR UPDATE, which waits for inserts in flight under that parent to commit and makes new ones
--     wait for it; it then updates the children in a statement of its own, so the rows it updates include
--     every committed insert, and an insert after it reads the new flag. Only that channel's streams and
--     those streams' inserts wait: a table lock here would let a channel owner who flips is_private in a
--     loop stall every chat on the platform.
-- The flag is readable with the row (a reader of a stream may read its channel's is_private anyway) and
-- written by no request role (permissions.py: server-owned). updated_at is not bumped by a flag change.

ALTER TABLE nchat_streams ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;
ALTER TABLE nchat_stream_chat_messages ADD COLUMN in_private_channel boolean NOT NULL DEFAULT false;

-- The backfill touches no other column (updated_at included) and wakes no live query: user triggers off.
ALTER TABLE nchat_streams DISABLE TRIGGER USER;
ALTER TABLE nchat_stream_chat_messages DISABLE TRIGGER USER;
UPDATE nchat_streams s SET in_private_channel = true FROM nchat_channels c WHERE c.id = s.channel_id AND c.is_private;
UPDATE nchat_stream_chat_messages m SET in_private_channel = true
  FROM nchat_streams s WHERE s.id = m.stream_id AND s.in_private_channel;
ALTER TABLE nchat_streams ENABLE TRIGGER USER;
ALTER TABLE nchat_stream_chat_messages ENABLE TRIGGER USER;

GRANT SELECT (in_private_channel) ON nchat_streams, nchat_stream_chat_messages
  TO nchat_anonymous, nchat_user, nchat_moderator;

-- A new or moved stream: its channel's flag. Definer: the channel is read without its policy.
CREATE FUNCTION nchat.stream_private_flag() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- A channel that is not found (refused by the foreign key right after) counts as private.
  NEW.in_private_channel := coalesce((SELECT c.is_private FROM public.nchat_channels c WHERE c.id = NEW.channel_id
                                        FOR KEY SHARE), true);
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_streams_private_flag BEFORE INSERT OR UPDATE OF channel_id ON nchat_streams
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_private_flag();

-- A new message: its stream's flag.
CREATE FUNCTION nchat.message_private_flag() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.in_private_channel := coalesce((SELECT s.in_private_channel FROM public.nchat_streams s
                                       WHERE s.id = NEW.stream_id FOR KEY SHARE), true);
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_private_flag BEFORE INSERT OR UPDATE OF stream_id
  ON nchat_stream_chat_messages FOR EACH ROW EXECUTE FUNCTION nchat.message_private_flag();

-- A channel's privacy changed: its streams follow (and through the next trigger, their messages).
CREATE FUNCTION nchat.channel_private_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- The UPDATE that fired this holds the row FOR NO KEY UPDATE, which a stream insert's FOR KEY SHARE
  -- passes; FOR UPDATE does not. The streams are locked before any is updated: a chat insert in flight
  -- updates its stream's counters at commit, which would deadlock against a stream row updated here while
  -- the next trigger waited for that insert.
  PERFORM 1 FROM public.nchat_channels c WHERE c.id = NEW.id FOR UPDATE;
  PERFORM 1 FROM public.nchat_streams s WHERE s.channel_id = NEW.id ORDER BY s.id FOR UPDATE;
  UPDATE public.nchat_streams s SET in_private_channel = NEW.is_private
   WHERE s.channel_id = NEW.id AND s.in_private_channel IS DISTINCT FROM NEW.is_private;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_channels_private_cascade AFTER UPDATE OF is_private ON nchat_channels
  FOR EACH ROW WHEN (OLD.is_private IS DISTINCT FROM NEW.is_private)
  EXECUTE FUNCTION nchat.channel_private_cascade();

-- A stream's flag changed (its channel's privacy, or a move; the flag of a move is set by the trigger above,
-- so it is named in no SET list and UPDATE OF channel_id is what fires here): its messages follow.
CREATE FUNCTION nchat.stream_private_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- Held already where a channel's change got here; a stream moved by the server takes it now.
  PERFORM 1 FROM public.nchat_streams s WHERE s.id = NEW.id FOR UPDATE;
  UPDATE public.nchat_stream_chat_messages m SET in_private_channel = NEW.in_private_channel
   WHERE m.stream_id = NEW.id AND m.in_private_channel IS DISTINCT FROM NEW.in_private_channel;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_streams_private_cascade AFTER UPDATE OF in_private_channel, channel_id ON nchat_streams
  FOR EACH ROW WHEN (OLD.in_private_channel IS DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.stream_private_cascade();

REVOKE ALL ON FUNCTION nchat.stream_private_flag(), nchat.message_private_flag(), nchat.channel_private_cascade(),
  nchat.stream_private_cascade() FROM PUBLIC;

-- A flag change is not an edit of the row: updated_at stays.
DROP TRIGGER nchat_streams_updated_at ON nchat_streams;
CREATE TRIGGER nchat_streams_updated_at BEFORE UPDATE ON nchat_streams FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_chat_messages_updated_at ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_updated_at BEFORE UPDATE ON nchat_stream_chat_messages FOR EACH ROW
  WHEN (OLD.in_private_channel IS NOT DISTINCT FROM NEW.in_private_channel)
  EXECUTE FUNCTION nchat.set_updated_at();

ALTER POLICY read_visible ON nchat_streams
  USING (NOT in_private_channel OR channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_stream_chat_messages
  USING ((NOT in_private_channel OR stream_id NOT IN (SELECT nchat.hidden_streams()))
         AND (status = 'visible' OR user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
              OR stream_id IN (SELECT nchat.managed_streams())));
