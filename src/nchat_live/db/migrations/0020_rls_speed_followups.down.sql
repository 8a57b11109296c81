-- Back to the per-row helpers of 0001/0015/0016/0017 (texts as they stood after 0018).
ALTER POLICY read_visible ON nchat_stream_polls
  USING ((SELECT nchat.is_staff()) OR EXISTS (SELECT 1 FROM nchat_streams s WHERE s.id = stream_id));
ALTER POLICY read_with_stream ON nchat_stream_engagement USING (nchat.can_read_stream(stream_id));
ALTER POLICY read_with_stream ON nchat_stream_chapters USING (nchat.can_read_stream(stream_id));
ALTER POLICY read_kept_or_manager ON nchat_stream_highlights
  USING ((status = 'kept' AND nchat.can_read_stream(stream_id)) OR nchat.can_manage_stream(stream_id));
ALTER POLICY read_visible ON nchat_stream_chat_messages
  USING ((NOT (stream_id IN (SELECT nchat.hidden_streams())))
         AND (status = 'visible' OR user_id = (SELECT nchat.user_id()) OR nchat.can_manage_stream(stream_id)));
ALTER POLICY read_manager ON nchat_stream_quality_metrics USING (nchat.can_manage_stream(stream_id));
ALTER POLICY read_manager ON nchat_stream_simulcast_destinations USING (nchat.can_manage_stream(stream_id));
ALTER POLICY read_own_or_broadcaster ON nchat_stream_viewers
  USING (user_id = (SELECT nchat.user_id()) OR nchat.can_manage_stream(stream_id));
ALTER POLICY read_own_or_broadcaster ON nchat_stream_poll_votes
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR nchat.poll_broadcaster(poll_id) = (SELECT nchat.user_id()));
ALTER POLICY insert_self ON nchat_stream_poll_votes
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(nchat.poll_stream(poll_id)));
ALTER POLICY update_self ON nchat_stream_poll_votes
  USING (user_id = nchat.user_id()) WITH CHECK (user_id = nchat.user_id());
ALTER POLICY insert_manager ON nchat_stream_polls
  WITH CHECK (created_by = nchat.user_id() AND nchat.can_manage_stream(stream_id));
ALTER POLICY read_visible ON nchat_channel_chat_settings USING (nchat.can_read_channel(channel_id));
ALTER POLICY moderators ON nchat_channel_blocked_terms USING (nchat.can_moderate_channel(channel_id));
ALTER POLICY read_moderators ON nchat_moderation_log USING (nchat.can_moderate_channel(channel_id));
ALTER POLICY read_own_or_manager ON nchat_stream_bans
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR (stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
         OR (channel_id IS NOT NULL AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator')));
ALTER POLICY read_own ON nchat_channel_subscriptions
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR nchat.channel_role(channel_id) IN ('owner', 'admin'));

DROP FUNCTION nchat.broadcast_polls();
DROP FUNCTION nchat.managed_streams();
DROP FUNCTION nchat.my_channels_as(text[]);
