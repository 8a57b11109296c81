DROP TRIGGER nchat_stream_chat_messages_mod_log ON nchat_stream_chat_messages;
DROP TRIGGER nchat_stream_bans_mod_log ON nchat_stream_bans;
DROP TRIGGER nchat_stream_chat_messages_rules_moderation ON nchat_stream_chat_messages;
DROP FUNCTION nchat.poll_close_due(uuid), nchat.poll_set_status(uuid, text), nchat.chat_review(uuid, boolean);
DROP TABLE nchat_moderation_log, nchat_channel_blocked_terms, nchat_channel_chat_settings, nchat_stream_poll_votes,
  nchat_stream_polls;
DO $$
DECLARE
  q text;
BEGIN
  SELECT d.description INTO STRICT q FROM pg_policy p
    JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_policy'::regclass
   WHERE p.polname = 'read_visible' AND p.polrelid = 'nchat_stream_chat_messages'::regclass;
  EXECUTE format('ALTER POLICY read_visible ON nchat_stream_chat_messages USING (%s)', q);
  COMMENT ON POLICY read_visible ON nchat_stream_chat_messages IS NULL;
END $$;
ALTER TABLE nchat_stream_chat_messages DROP COLUMN status;
DROP FUNCTION nchat.log_rule_change(), nchat.log_ban(), nchat.log_message_moderation(),
  nchat.mod_log(uuid, uuid, text, uuid, uuid, jsonb), nchat.chat_settings_rules(), nchat.term_rules(),
  nchat.chat_moderation_rules(), nchat.chat_verdict(uuid, uuid, text, timestamptz),
  nchat.poll_vote_counts(), nchat.poll_vote_rules(),
  nchat.poll_rules(), nchat.poll_stream(uuid), nchat.poll_broadcaster(uuid), nchat.term_regex(text),
  nchat.fold_text(text), nchat.can_moderate_channel(uuid);
