-- Back to the per-row helpers of 0001/0011.
ALTER POLICY read_visible ON nchat_channels
  USING (NOT is_private OR owner_id = nchat.user_id() OR nchat.can_read_channel(id));
ALTER POLICY read_visible ON nchat_streams USING (nchat.can_read_channel(channel_id));
ALTER POLICY read_visible ON nchat_channel_members USING (nchat.can_read_channel(channel_id));
ALTER POLICY read_visible ON nchat_stream_chat_messages USING (nchat.can_read_stream(stream_id));
ALTER POLICY read_visible ON nchat_stream_reactions USING (nchat.can_read_stream(stream_id));
ALTER POLICY read_visible ON nchat_stream_recordings USING (nchat.can_read_stream(stream_id));
ALTER POLICY read_visible ON nchat_stream_questions USING (nchat.can_read_stream(stream_id));

DO $$
DECLARE
  p record;
  q text;
  w text;
  stmt text;
BEGIN
  FOR p IN SELECT tablename, policyname, qual, with_check FROM pg_policies
            WHERE schemaname = 'public' AND policyname <> 'admin_all' LOOP
    q := p.qual;
    w := p.with_check;
    q := replace(replace(replace(replace(q, '( SELECT nchat.user_id() AS user_id)', 'nchat.user_id()'),
                                 '( SELECT nchat.is_staff() AS is_staff)', 'nchat.is_staff()'),
                         '( SELECT nchat.is_admin() AS is_admin)', 'nchat.is_admin()'),
                 '( SELECT nchat.role() AS role)', 'nchat.role()');
    w := replace(replace(replace(replace(w, '( SELECT nchat.user_id() AS user_id)', 'nchat.user_id()'),
                                 '( SELECT nchat.is_staff() AS is_staff)', 'nchat.is_staff()'),
                         '( SELECT nchat.is_admin() AS is_admin)', 'nchat.is_admin()'),
                 '( SELECT nchat.role() AS role)', 'nchat.role()');
    IF q IS NOT DISTINCT FROM p.qual AND w IS NOT DISTINCT FROM p.with_check THEN
      CONTINUE;
    END IF;
    stmt := format('ALTER POLICY %I ON %I', p.policyname, p.tablename);
    IF q IS NOT NULL THEN
      stmt := stmt || format(' USING (%s)', q);
    END IF;
    IF w IS NOT NULL THEN
      stmt := stmt || format(' WITH CHECK (%s)', w);
    END IF;
    EXECUTE stmt;
  END LOOP;
END $$;

CREATE INDEX nchat_channel_members_user_idx ON nchat_channel_members (user_id);
DROP INDEX nchat_channel_members_user_channel_idx;
DROP FUNCTION nchat.my_channels();
DROP FUNCTION nchat.hidden_streams();
DROP FUNCTION nchat.hidden_channels();
DROP INDEX nchat_channels_private_idx;
DROP INDEX nchat_streams_channel_idx;
