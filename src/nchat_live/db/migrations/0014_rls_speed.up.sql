-- Row-level security at (almost) no cost (issue 15). The same rules as 0001/0009/0011/0013, written so
-- Postgres evaluates them once per statement or as a set, not once per row:
--
--   1. Claims are read once per statement: every policy's nchat.user_id() / is_staff() / is_admin() /
--      role() becomes a scalar sub-select, which the planner runs once as an InitPlan (a bare call of a
--      STABLE function is re-evaluated for every row, parsing the `hasura.user` JSON each time).
--   2. Read visibility is a set the planner hashes, not a SECURITY DEFINER call per row (a definer
--      function is never inlined: each call is a full executor start/stop, 22x the cost of a 500-row
--      count). The set is what the caller may NOT read (nchat.hidden_channels(): private channels they are
--      not in; nchat.hidden_streams(): those channels' streams), which on a mostly public platform is the
--      small one; `stream_id NOT IN (SELECT nchat.hidden_streams())` is an uncorrelated sub-select that
--      Postgres runs as a hashed SubPlan, built once per statement, one hash probe per row. (Tried and
--      measured, bench/rls_explain.py: `EXISTS (SELECT 1 FROM nchat_streams s WHERE s.id = stream_id)`
--      through the stream's own policy lets generic plans of prepared statements probe per row, 3x slower
--      on a 20,000-row count, and is costed as if probed per row, which passes jit_above_cost; `stream_id
--      IN (SELECT s.id FROM nchat_streams s)` hashes every visible stream, ~1 ms per statement at 1,200
--      streams, 7x a 50-message read.) The price: the hidden set, built once per statement.
--   3. Indexes that answer "my channels", "private channels" and "streams of a channel" from the index.
--
-- Nothing else changes: same roles, same rows, same checks on writes (writes touch one row; they keep the
-- helper functions, whose answers are unchanged). tests/db/test_rls.py and tests/security hold both.

-- The caller's channels (member of, any role). Definer: a membership row is read without that table's
-- own policy (which is what would make a policy on channels recurse).
CREATE FUNCTION nchat.my_channels() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10 AS $$
BEGIN
  RETURN QUERY SELECT m.channel_id FROM public.nchat_channel_members m WHERE m.user_id = nchat.user_id();
END $$;
REVOKE ALL ON FUNCTION nchat.my_channels() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.my_channels() TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- What the caller may not read: private channels they are not a member of, and those channels' streams
-- (nothing for staff). The policies below test `NOT IN` these: a live-streaming platform is mostly public,
-- so the hidden set is the small one (visibility is all public channels and streams plus the caller's).
-- PL/pgSQL rather than SQL: a PL/pgSQL function keeps its statements' plans for the session, where a
-- SQL function called from a sub-select is planned again in every statement (2-3x the cost per call).
CREATE FUNCTION nchat.hidden_channels() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10 AS $$
DECLARE
  me uuid := nchat.user_id();
BEGIN
  IF nchat.is_staff() THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT c.id FROM public.nchat_channels c
     WHERE c.is_private
       AND c.id NOT IN (SELECT m.channel_id FROM public.nchat_channel_members m WHERE m.user_id = me);
END $$;
CREATE FUNCTION nchat.hidden_streams() RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10 AS $$
DECLARE
  me uuid := nchat.user_id();
BEGIN
  IF nchat.is_staff() THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT s.id FROM public.nchat_streams s
     WHERE s.channel_id IN (
       SELECT c.id FROM public.nchat_channels c
        WHERE c.is_private
          AND c.id NOT IN (SELECT m.channel_id FROM public.nchat_channel_members m WHERE m.user_id = me));
END $$;
REVOKE ALL ON FUNCTION nchat.hidden_channels(), nchat.hidden_streams() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.hidden_channels(), nchat.hidden_streams()
  TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;
CREATE INDEX nchat_channels_private_idx ON nchat_channels (id) WHERE is_private;
CREATE INDEX nchat_streams_channel_idx ON nchat_streams (channel_id) INCLUDE (id);

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

-- 2. Read visibility as sets: nchat.can_read_channel(x) is `x NOT IN (SELECT nchat.hidden_channels())` for a
-- row whose channel exists (a foreign key), nchat.can_read_stream(x) is `x NOT IN (SELECT
-- nchat.hidden_streams())`; each is an uncorrelated sub-select that Postgres runs as a hashed SubPlan, built
-- once per statement, one hash probe per row.
-- Channels: public, yours (owner: a channel being inserted with RETURNING is not yet in my_channels),
-- a member's, or staff.
ALTER POLICY read_visible ON nchat_channels
  USING (NOT is_private OR owner_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR id IN (SELECT nchat.my_channels()));

-- Streams and memberships: with their channel.
ALTER POLICY read_visible ON nchat_streams USING (channel_id NOT IN (SELECT nchat.hidden_channels()));
ALTER POLICY read_visible ON nchat_channel_members USING (channel_id NOT IN (SELECT nchat.hidden_channels()));

-- A stream's rows: with the stream.
ALTER POLICY read_visible ON nchat_stream_chat_messages USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_reactions USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_recordings USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
ALTER POLICY read_visible ON nchat_stream_questions USING (stream_id NOT IN (SELECT nchat.hidden_streams()));
