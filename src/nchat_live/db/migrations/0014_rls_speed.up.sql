-- Row-level security at (almost) no cost (issue 15). The same rules as 0001/0009/0011/0013, written so
-- Postgres evaluates them once per statement or as a set, not once per row:
--
--   1. Claims are read once per statement: every policy's nchat.user_id() / is_staff() / is_admin() /
--      role() becomes a scalar sub-select, which the planner runs once as an InitPlan (a bare call of a
--      STABLE function is re-evaluated for every row, parsing the `hasura.user` JSON each time).
--   2. Read visibility is a join the planner can hash, not a SECURITY DEFINER call per row (a definer
--      function is never inlined: each call is a full executor start/stop, 22x the cost of a 500-row
--      count). A row of a stream's child table (chat, reactions, recordings, questions) is visible when
--      its stream is: `stream_id IN (SELECT s.id FROM nchat_streams s)`, the stream's own policy applying
--      inside. A stream or a membership is visible with its channel: a public one (`channel_id IN (SELECT
--      c.id FROM nchat_channels c WHERE NOT c.is_private)`) or one of the caller's (nchat.my_channels(), a
--      small set). Each is an uncorrelated IN, which Postgres runs as a hashed SubPlan: the set is built
--      once per statement and each row costs a hash probe. (EXISTS would let the planner choose a
--      per-row probe instead, and it does for generic plans of prepared statements: 3x slower on a
--      20,000-row count; and it costs EXISTS as if probed per row, inflating estimates past
--      jit_above_cost.) The price is the size of the set: every visible stream, once per statement
--      (about 0.5 ms per 1,000 streams); see README, "RLS cost".
--   3. An index that answers "my channels" from the index alone.
--
-- Nothing else changes: same roles, same rows, same checks on writes (writes touch one row; they keep the
-- helper functions, whose answers are unchanged). tests/db/test_rls.py and tests/security hold both.

-- The caller's channels (member of, any role). Definer: a membership row is read without that table's
-- own policy (which is what would make a policy on channels recurse).
CREATE FUNCTION nchat.my_channels() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER ROWS 10 AS $$
  SELECT m.channel_id FROM public.nchat_channel_members m WHERE m.user_id = nchat.user_id()
$$;
REVOKE ALL ON FUNCTION nchat.my_channels() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.my_channels() TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

CREATE INDEX nchat_channel_members_user_channel_idx ON nchat_channel_members (user_id, channel_id);
DROP INDEX nchat_channel_members_user_idx;

-- 1. Claims once per statement, in every policy in place now (admin_all is `true`).
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
    q := replace(replace(replace(replace(q, 'nchat.user_id()', '(SELECT nchat.user_id())'),
                                 'nchat.is_staff()', '(SELECT nchat.is_staff())'),
                         'nchat.is_admin()', '(SELECT nchat.is_admin())'), 'nchat.role()', '(SELECT nchat.role())');
    w := replace(replace(replace(replace(w, 'nchat.user_id()', '(SELECT nchat.user_id())'),
                                 'nchat.is_staff()', '(SELECT nchat.is_staff())'),
                         'nchat.is_admin()', '(SELECT nchat.is_admin())'), 'nchat.role()', '(SELECT nchat.role())');
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

-- 2. Read visibility as sets.
-- Channels: public, yours (owner: a channel being inserted with RETURNING is not yet in my_channels),
-- a member's, or staff.
ALTER POLICY read_visible ON nchat_channels
  USING (NOT is_private OR owner_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR id IN (SELECT nchat.my_channels()));

-- Streams and memberships: with their channel (nchat.can_read_channel, as a set).
ALTER POLICY read_visible ON nchat_streams
  USING ((SELECT nchat.is_staff()) OR channel_id IN (SELECT nchat.my_channels())
         OR channel_id IN (SELECT c.id FROM nchat_channels c WHERE NOT c.is_private));
ALTER POLICY read_visible ON nchat_channel_members
  USING ((SELECT nchat.is_staff()) OR channel_id IN (SELECT nchat.my_channels())
         OR channel_id IN (SELECT c.id FROM nchat_channels c WHERE NOT c.is_private));

-- A stream's rows: with the stream (nchat.can_read_stream, as a set: the stream's policy applies inside).
ALTER POLICY read_visible ON nchat_stream_chat_messages
  USING ((SELECT nchat.is_staff()) OR stream_id IN (SELECT s.id FROM nchat_streams s));
ALTER POLICY read_visible ON nchat_stream_reactions
  USING ((SELECT nchat.is_staff()) OR stream_id IN (SELECT s.id FROM nchat_streams s));
ALTER POLICY read_visible ON nchat_stream_recordings
  USING ((SELECT nchat.is_staff()) OR stream_id IN (SELECT s.id FROM nchat_streams s));
ALTER POLICY read_visible ON nchat_stream_questions
  USING ((SELECT nchat.is_staff()) OR stream_id IN (SELECT s.id FROM nchat_streams s));
