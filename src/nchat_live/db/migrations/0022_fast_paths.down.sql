DROP TRIGGER nchat_stream_chat_messages_counters ON nchat_stream_chat_messages;
CREATE TRIGGER nchat_stream_chat_messages_counters AFTER INSERT ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_counters();

-- The SQL texts of 0001 (can_read_stream, can_manage_stream, can_read_channel, is_broadcaster, channel_role),
-- 0011 (can_moderate_channel) and 0015 (stream_channel).
CREATE OR REPLACE FUNCTION nchat.can_read_stream(stream uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_streams s JOIN public.nchat_channels c ON c.id = s.channel_id
    WHERE s.id = stream
      AND (NOT c.is_private OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m WHERE m.channel_id = c.id AND m.user_id = nchat.user_id())))
$$;

CREATE OR REPLACE FUNCTION nchat.can_manage_stream(stream uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_streams s
    WHERE s.id = stream
      AND (s.broadcaster_id = nchat.user_id() OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m
        WHERE m.channel_id = s.channel_id AND m.user_id = nchat.user_id()
          AND m.role IN ('owner', 'admin', 'moderator'))))
$$;

CREATE OR REPLACE FUNCTION nchat.can_read_channel(channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_channels c
    WHERE c.id = channel
      AND (NOT c.is_private OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m WHERE m.channel_id = c.id AND m.user_id = nchat.user_id())))
$$;

CREATE OR REPLACE FUNCTION nchat.can_moderate_channel(channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_channel_members m
    WHERE m.channel_id = channel AND m.user_id = nchat.user_id() AND m.role IN ('owner', 'admin', 'moderator'))
$$;

CREATE OR REPLACE FUNCTION nchat.is_broadcaster(stream uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT EXISTS (SELECT 1 FROM public.nchat_streams s WHERE s.id = stream AND s.broadcaster_id = nchat.user_id())
$$;

CREATE OR REPLACE FUNCTION nchat.channel_role(channel uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT m.role FROM public.nchat_channel_members m WHERE m.channel_id = channel AND m.user_id = nchat.user_id()
$$;

CREATE OR REPLACE FUNCTION nchat.stream_channel(stream uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT s.channel_id FROM public.nchat_streams s WHERE s.id = stream
$$;
