-- 0019's text of the policy.
ALTER POLICY read_manager_or_guest ON nchat_stream_guests
  USING (user_id = (SELECT nchat.user_id()) OR nchat.can_manage_stream(stream_id));
