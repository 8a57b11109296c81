ALTER POLICY read_visible ON nchat_channel_members USING (channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_channel_chat_settings USING (channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_stream_reactions USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_recordings USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_questions USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_polls USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_with_stream ON nchat_stream_chapters USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_kept_or_manager ON nchat_stream_highlights
  USING ((status = 'kept' AND stream_id NOT IN (SELECT nchat.hidden_streams()))
         OR (SELECT nchat.is_staff()) OR stream_id IN (SELECT nchat.managed_streams()));

CREATE OR REPLACE FUNCTION nchat.log_rule_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
  PERFORM nchat.mod_log((r ->> 'channel_id')::uuid, NULL,
                        CASE WHEN TG_TABLE_NAME = 'nchat_channel_blocked_terms'
                             THEN CASE WHEN TG_OP = 'DELETE' THEN 'term-removed' ELSE 'term-added' END
                             ELSE 'settings-changed' END,
                        NULL, NULL, r - 'channel_id');
  RETURN NULL;
END $$;

DROP TRIGGER nchat_channel_chat_settings_mod_log_update ON nchat_channel_chat_settings;
DROP TRIGGER nchat_channel_chat_settings_mod_log ON nchat_channel_chat_settings;
CREATE TRIGGER nchat_channel_chat_settings_mod_log AFTER INSERT OR UPDATE ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.log_rule_change();
DROP TRIGGER nchat_channel_chat_settings_rules_update ON nchat_channel_chat_settings;
DROP TRIGGER nchat_channel_chat_settings_rules ON nchat_channel_chat_settings;
CREATE TRIGGER nchat_channel_chat_settings_rules BEFORE INSERT OR UPDATE ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_settings_rules();
DROP TRIGGER nchat_channel_chat_settings_updated_at ON nchat_channel_chat_settings;
CREATE TRIGGER nchat_channel_chat_settings_updated_at BEFORE UPDATE ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER set_updated_at ON nchat_stream_highlights;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_highlights
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER set_updated_at ON nchat_stream_chapters;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_chapters
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_polls_updated_at ON nchat_stream_polls;
CREATE TRIGGER nchat_stream_polls_updated_at BEFORE UPDATE ON nchat_stream_polls
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_questions_updated_at ON nchat_stream_questions;
CREATE TRIGGER nchat_stream_questions_updated_at BEFORE UPDATE ON nchat_stream_questions
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_recordings_updated_at ON nchat_stream_recordings;
CREATE TRIGGER nchat_stream_recordings_updated_at BEFORE UPDATE ON nchat_stream_recordings
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();

-- 0025's cascades.
CREATE OR REPLACE FUNCTION nchat.stream_private_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- Held already where a channel's change got here; a stream moved by the server takes it now.
  PERFORM 1 FROM public.nchat_streams s WHERE s.id = NEW.id FOR UPDATE;
  UPDATE public.nchat_stream_chat_messages m SET in_private_channel = NEW.in_private_channel
   WHERE m.stream_id = NEW.id AND m.in_private_channel IS DISTINCT FROM NEW.in_private_channel;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION nchat.channel_private_cascade() RETURNS trigger
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

DROP TRIGGER a0_private_flag_lock ON nchat_streams;
DROP TRIGGER a0_private_flag_lock ON nchat_channels;
DROP FUNCTION nchat.private_flag_lock();

DROP TRIGGER z_private_flag ON nchat_stream_highlights;
DROP TRIGGER z_private_flag ON nchat_stream_chapters;
DROP TRIGGER z_private_flag ON nchat_stream_polls;
DROP TRIGGER z_private_flag ON nchat_stream_questions;
DROP TRIGGER z_private_flag ON nchat_stream_recordings;
DROP TRIGGER z_private_flag ON nchat_stream_reactions;
DROP TRIGGER z_private_flag ON nchat_channel_chat_settings;
DROP TRIGGER z_private_flag ON nchat_channel_members;
DROP FUNCTION nchat.stream_row_private_flag();
DROP FUNCTION nchat.channel_row_private_flag();

ALTER TABLE nchat_stream_highlights DROP COLUMN in_private_channel;
ALTER TABLE nchat_stream_chapters DROP COLUMN in_private_channel;
ALTER TABLE nchat_stream_polls DROP COLUMN in_private_channel;
ALTER TABLE nchat_stream_questions DROP COLUMN in_private_channel;
ALTER TABLE nchat_stream_recordings DROP COLUMN in_private_channel;
ALTER TABLE nchat_stream_reactions DROP COLUMN in_private_channel;
ALTER TABLE nchat_channel_chat_settings DROP COLUMN in_private_channel;
ALTER TABLE nchat_channel_members DROP COLUMN in_private_channel;
