-- The definer helpers the chat rules and the write policies call per statement, in plpgsql instead of SQL.
-- A SECURITY DEFINER SQL function is never inlined, and Postgres (15) keeps a SQL function's plan only for
-- the statement that calls it: every INSERT into nchat_stream_chat_messages planned can_read_stream three
-- times (rules_apply in two triggers and the insert policy) and can_manage_stream twice, ~0.25 ms each,
-- about 1.3 ms of a 2 ms insert (pg_stat_user_functions, track_functions = all). A plpgsql function's
-- plan is kept by the connection and reused. Same queries, same owner, volatility, definer rights and
-- grants (CREATE OR REPLACE keeps the ACL); channel_role and stream_channel keep a SQL function's
-- "first row" answer (SELECT INTO, not a scalar sub-select that would fail on a second row).
CREATE OR REPLACE FUNCTION nchat.can_read_stream(stream uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
  RETURN nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_streams s JOIN public.nchat_channels c ON c.id = s.channel_id
    WHERE s.id = stream
      AND (NOT c.is_private OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m WHERE m.channel_id = c.id AND m.user_id = nchat.user_id())));
END $$;

CREATE OR REPLACE FUNCTION nchat.can_manage_stream(stream uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
  RETURN nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_streams s
    WHERE s.id = stream
      AND (s.broadcaster_id = nchat.user_id() OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m
        WHERE m.channel_id = s.channel_id AND m.user_id = nchat.user_id()
          AND m.role IN ('owner', 'admin', 'moderator'))));
END $$;

CREATE OR REPLACE FUNCTION nchat.can_read_channel(channel uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
  RETURN nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_channels c
    WHERE c.id = channel
      AND (NOT c.is_private OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m WHERE m.channel_id = c.id AND m.user_id = nchat.user_id())));
END $$;

CREATE OR REPLACE FUNCTION nchat.can_moderate_channel(channel uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
  RETURN nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_channel_members m
    WHERE m.channel_id = channel AND m.user_id = nchat.user_id() AND m.role IN ('owner', 'admin', 'moderator'));
END $$;

CREATE OR REPLACE FUNCTION nchat.is_broadcaster(stream uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM public.nchat_streams s WHERE s.id = stream AND s.broadcaster_id = nchat.user_id());
END $$;

CREATE OR REPLACE FUNCTION nchat.channel_role(channel uuid) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
  found_role text;
BEGIN
  SELECT m.role INTO found_role FROM public.nchat_channel_members m
   WHERE m.channel_id = channel AND m.user_id = nchat.user_id();
  RETURN found_role;
END $$;

CREATE OR REPLACE FUNCTION nchat.stream_channel(stream uuid) RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
  found_channel uuid;
BEGIN
  SELECT s.channel_id INTO found_channel FROM public.nchat_streams s WHERE s.id = stream;
  RETURN found_channel;
END $$;

-- The stream's chat counter (0003) at commit, not at the insert: the UPDATE of the stream's row took
-- its lock at the insert and held it until COMMIT, through the round trips and the request's own
-- work in between, so every sender on a stream waited for the one before to commit. Deferred, the lock
-- is held only while the transaction commits. The counters after commit are the same; nothing reads
-- them inside the sending transaction.
DROP TRIGGER nchat_stream_chat_messages_counters ON nchat_stream_chat_messages;
CREATE CONSTRAINT TRIGGER nchat_stream_chat_messages_counters AFTER INSERT ON nchat_stream_chat_messages
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION nchat.chat_counters();
