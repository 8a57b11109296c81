-- The definer helpers of the row policies and the chat rules get a search_path of their own.
--
-- 0022 made them plpgsql so that a backend keeps each one's plan. Postgres keeps a cached plan only
-- while the search_path in force matches the one it was planned under, and these helpers had none of
-- their own (0001: a SET clause costs a GUC save and restore per call), so each ran under its caller's.
-- Where a backend has a temporary namespace, the caller's path is either the session's (pg_temp
-- implicitly first: a statement as the request's role, and its policies) or a trigger's
-- `public, pg_temp` (pg_temp last: the chat rules of 0009/0015), two different paths, and a chat insert
-- calls can_read_stream from both: every call re-planned it. Every pooled connection of the API has a
-- temporary namespace once a fast-path read ran on it (Database.read_text's pg_temp functions), so a
-- chat insert there paid ~0.2 ms a call, 3 calls an insert (track_functions, one connection: 224 µs a
-- call against 22 µs on a connection without one; the insert 2.7 ms against 1.5 ms).
-- With a path of their own the plan matches whoever calls; the SET costs ~2 µs a call, and no row
-- policy calls these per row (reads test visibility as sets since 0014; my_channels, hidden_channels and
-- hidden_streams run once per statement). The bodies qualify every name, so the path resolves nothing
-- new; pg_temp last, as in every other definer function. A later CREATE OR REPLACE of one of these must
-- keep the clause (it resets it otherwise).
ALTER FUNCTION nchat.can_read_stream(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.can_manage_stream(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.can_read_channel(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.can_moderate_channel(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.is_broadcaster(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.channel_role(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.stream_channel(uuid) SET search_path = public, pg_temp;
ALTER FUNCTION nchat.my_channels() SET search_path = public, pg_temp;
ALTER FUNCTION nchat.hidden_channels() SET search_path = public, pg_temp;
ALTER FUNCTION nchat.hidden_streams() SET search_path = public, pg_temp;
