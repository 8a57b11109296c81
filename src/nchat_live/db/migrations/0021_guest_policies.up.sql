-- Guest rows read as a set, not a definer call per row (0014's pattern, as 0020 did for 0015-0017): 0019's
-- read_manager_or_guest called nchat.can_manage_stream(stream_id) for every row, a full executor start/stop
-- each. Same rule (can_manage_stream(x) = staff OR x broadcast by me OR my role in its channel is
-- owner/admin/moderator = is_staff() OR x IN managed_streams(); every row's stream exists, a foreign key):
-- the invited user, or the stream's managers. The sub-selects are uncorrelated: the claims once per
-- statement (InitPlans), managed_streams() hashed once per statement, one probe per row.
-- 0019 and 0020 are unreleased, but they are applied where they ran: the fix is a new step, not an edit.
ALTER POLICY read_manager_or_guest ON nchat_stream_guests
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR stream_id IN (SELECT nchat.managed_streams()));
