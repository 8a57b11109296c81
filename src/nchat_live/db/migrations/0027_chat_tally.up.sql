-- A stream's chat counter without a write to the stream's row per message (issue 15, the mutation). 0003's
-- chat_counters updated nchat_streams.total_chat_messages for every message: concurrent senders on a stream
-- queued on that row's lock, held through each commit's WAL flush (0022 deferred it to commit; still one
-- queue per stream), and every message changed a stream row, so every live query reading nchat_streams
-- (a channel page's list of live streams, for each of its viewers) was woken by every chat message anywhere.
-- Measured (bench/graphql_bench.py --only mutation, the counter trigger off by hand): 395 -> 484 sends/s,
-- Postgres 2,421 -> 1,793 us per send.
--
-- Now a message adds 1 to a tally row of its stream and of its sending backend's slot (pid % 16: concurrent
-- senders rarely share a row), in a table of the nchat schema (no request role reads or writes it, no
-- live query reads it, no change trigger). The stream row takes its tallies when it is next updated (a
-- BEFORE UPDATE trigger folds them into NEW, whatever the update: a status change, a viewer count, ...) and
-- the scheduler's tick (every 5 s) updates every stream with tallies, so the counter trails by at most a
-- tick and a stream's final count is folded when it ends. Tally rows a sender still holds are skipped
-- (SKIP LOCKED) and folded the next time: a fold never waits for chat, and chat never waits for a fold.
-- sent_chat_messages (the sender's viewer row) stays exact: one row per viewer, no queue.

CREATE TABLE nchat.chat_tallies (
  stream_id uuid NOT NULL REFERENCES public.nchat_streams (id) ON DELETE CASCADE,
  slot smallint NOT NULL,
  messages bigint NOT NULL,
  PRIMARY KEY (stream_id, slot)
);
REVOKE ALL ON nchat.chat_tallies FROM PUBLIC;

CREATE OR REPLACE FUNCTION nchat.chat_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO nchat.chat_tallies AS t (stream_id, slot, messages) VALUES (NEW.stream_id, pg_backend_pid() % 16, 1)
    ON CONFLICT (stream_id, slot) DO UPDATE SET messages = t.messages + 1;
  UPDATE nchat_stream_viewers SET sent_chat_messages = sent_chat_messages + 1
   WHERE stream_id = NEW.stream_id AND user_id = NEW.user_id AND left_at IS NULL;
  RETURN NULL;
END $$;

-- Any update of a stream row takes the stream's unlocked tallies with it.
CREATE FUNCTION nchat.fold_chat_tally() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  pending bigint;
BEGIN
  WITH gone AS (
    DELETE FROM nchat.chat_tallies t
     WHERE t.ctid = ANY (ARRAY(SELECT x.ctid FROM nchat.chat_tallies x WHERE x.stream_id = NEW.id
                                FOR UPDATE SKIP LOCKED))
    RETURNING t.messages)
  SELECT sum(messages) INTO pending FROM gone;
  IF pending IS NOT NULL THEN
    NEW.total_chat_messages := NEW.total_chat_messages + pending;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_streams_fold_chat_tally BEFORE UPDATE ON nchat_streams
  FOR EACH ROW EXECUTE FUNCTION nchat.fold_chat_tally();

-- The scheduler's tick: the streams with tallies, updated in id order (the trigger does the fold); how many.
CREATE FUNCTION nchat.fold_chat_tallies() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  n integer := 0;
  s uuid;
BEGIN
  FOR s IN SELECT DISTINCT t.stream_id FROM nchat.chat_tallies t ORDER BY 1 LOOP
    UPDATE public.nchat_streams SET total_chat_messages = total_chat_messages WHERE id = s;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION nchat.fold_chat_tally(), nchat.fold_chat_tallies() FROM PUBLIC;
-- The scheduler's (its session runs as nchat_admin); server-only (permissions.py SERVER_ONLY_FUNCTIONS).
GRANT EXECUTE ON FUNCTION nchat.fold_chat_tallies() TO nchat_admin;
