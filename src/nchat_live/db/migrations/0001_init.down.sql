-- Roles are cluster-wide and may serve other databases, so they stay; everything else goes.
DROP TABLE IF EXISTS nchat_stream_reminders, nchat_stream_bans, nchat_stream_question_votes,
  nchat_stream_questions, nchat_stream_recordings, nchat_stream_reactions, nchat_stream_chat_messages,
  nchat_stream_quality_metrics, nchat_stream_viewers, nchat_streams, nchat_channel_subscriptions,
  nchat_user_follows, nchat_channel_members, nchat_channels, nchat_users CASCADE;
DROP SCHEMA IF EXISTS nchat CASCADE;
