ALTER POLICY read_visible ON nchat_streams USING (channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_stream_chat_messages
  USING (stream_id NOT IN (SELECT nchat.hidden_streams())
         AND (status = 'visible' OR user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
              OR stream_id IN (SELECT nchat.managed_streams())));

DROP TRIGGER nchat_streams_updated_at ON nchat_streams;
CREATE TRIGGER nchat_streams_updated_at BEFORE UPDATE ON nchat_streams FOR EACH ROW
  EXECUTE FUNCTION nchat.set_updated_at();
DROP TRIGGER nchat_stream_chat_messages_updated_at ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_updated_at BEFORE UPDATE ON nchat_stream_chat_messages FOR EACH ROW
  EXECUTE FUNCTION nchat.set_updated_at();

DROP TRIGGER nchat_streams_private_cascade ON nchat_streams;
DROP TRIGGER nchat_channels_private_cascade ON nchat_channels;
DROP TRIGGER nchat_stream_chat_messages_private_flag ON nchat_stream_chat_messages;
DROP TRIGGER nchat_streams_private_flag ON nchat_streams;
DROP FUNCTION nchat.stream_private_cascade();
DROP FUNCTION nchat.channel_private_cascade();
DROP FUNCTION nchat.message_private_flag();
DROP FUNCTION nchat.stream_private_flag();

ALTER TABLE nchat_stream_chat_messages DROP COLUMN in_private_channel;
ALTER TABLE nchat_streams DROP COLUMN in_private_channel;
