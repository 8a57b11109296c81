UPDATE nchat_streams SET total_chat_messages = total_chat_messages
 WHERE id IN (SELECT stream_id FROM nchat.chat_tallies);
DROP TRIGGER nchat_streams_fold_chat_tally ON nchat_streams;
DROP FUNCTION nchat.fold_chat_tallies();
DROP FUNCTION nchat.fold_chat_tally();
-- 0003's text.
CREATE OR REPLACE FUNCTION nchat.chat_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE nchat_streams SET total_chat_messages = total_chat_messages + 1 WHERE id = NEW.stream_id;
  UPDATE nchat_stream_viewers SET sent_chat_messages = sent_chat_messages + 1
   WHERE stream_id = NEW.stream_id AND user_id = NEW.user_id AND left_at IS NULL;
  RETURN NULL;
END $$;
DROP TABLE nchat.chat_tallies;
