-- nchat-live schema: Hasura-style tables (snake_case, nchat_ prefix, uuid keys, timestamptz),
-- request roles and the row-level security that decides what each caller sees.

-- Roles are cluster-wide and may already exist (another database on the same server, a parallel
-- test run), so creation tolerates both "exists" and the race where two creators collide.
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['nchat_anonymous', 'nchat_user', 'nchat_moderator', 'nchat_admin'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END;
    END IF;
    -- The application's login role must be able to SET ROLE to every request role.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, r, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO %I', r, current_user);
    END IF;
  END LOOP;
END $$;

CREATE SCHEMA IF NOT EXISTS nchat;
GRANT USAGE ON SCHEMA nchat TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;
GRANT USAGE ON SCHEMA public TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- Claims live in the transaction-local setting `hasura.user` (the name Hasura itself uses), as
-- JSON of session variables: {"x-hasura-role": "user", "x-hasura-user-id": "..."}.
CREATE FUNCTION nchat.claims() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('hasura.user', true), ''), '{}')::jsonb
$$;

CREATE FUNCTION nchat.user_id() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(nchat.claims() ->> 'x-hasura-user-id', '')::uuid
$$;

CREATE FUNCTION nchat.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nchat.claims() ->> 'x-hasura-role', 'anonymous')
$$;

CREATE FUNCTION nchat.is_admin() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT nchat.role() = 'admin'
$$;

CREATE FUNCTION nchat.is_staff() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT nchat.role() IN ('admin', 'moderator')
$$;

CREATE FUNCTION nchat.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

CREATE TABLE nchat_users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text UNIQUE,
  username text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
  display_name text,
  avatar_url text,
  status text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'busy', 'offline')),
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nchat_channels (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  slug text NOT NULL UNIQUE,
  description text,
  is_private boolean NOT NULL DEFAULT false,
  owner_id uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nchat_channel_members (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id uuid NOT NULL REFERENCES nchat_channels (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'moderator', 'member', 'guest')),
  joined_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (channel_id, user_id)
);
CREATE INDEX nchat_channel_members_user_idx ON nchat_channel_members (user_id);

-- "followers_only" chat: the viewer follows the stream's broadcaster.
CREATE TABLE nchat_user_follows (
  follower_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  following_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (follower_id, following_id),
  CHECK (follower_id <> following_id)
);
CREATE INDEX nchat_user_follows_following_idx ON nchat_user_follows (following_id);

-- "subscribers_only" chat: the viewer holds an unexpired subscription to the stream's channel.
CREATE TABLE nchat_channel_subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id uuid NOT NULL REFERENCES nchat_channels (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  tier text NOT NULL DEFAULT 'basic',
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (channel_id, user_id)
);

CREATE TABLE nchat_streams (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id uuid NOT NULL REFERENCES nchat_channels (id) ON DELETE CASCADE,
  broadcaster_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  description text,
  thumbnail_url text,
  scheduled_at timestamptz,
  status text NOT NULL DEFAULT 'scheduled'
    CHECK (status IN ('scheduled', 'preparing', 'live', 'ending', 'ended', 'cancelled', 'failed')),
  -- The application issues keys from `secrets`; this default (two random v4 UUIDs, 244 random bits)
  -- only covers rows written directly, and needs no extension.
  stream_key text NOT NULL UNIQUE DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
  ingest_url text,
  hls_manifest_url text,
  dash_manifest_url text,
  max_resolution text NOT NULL DEFAULT '1080p' CHECK (max_resolution IN ('1080p', '720p', '480p', '360p')),
  bitrate_kbps integer CHECK (bitrate_kbps IS NULL OR bitrate_kbps > 0),
  fps integer CHECK (fps IS NULL OR fps BETWEEN 1 AND 120),
  is_recorded boolean NOT NULL DEFAULT true,
  enable_chat boolean NOT NULL DEFAULT true,
  enable_reactions boolean NOT NULL DEFAULT true,
  enable_qa boolean NOT NULL DEFAULT false,
  chat_mode text NOT NULL DEFAULT 'open' CHECK (chat_mode IN ('open', 'followers_only', 'subscribers_only')),
  slow_mode_seconds integer NOT NULL DEFAULT 0 CHECK (slow_mode_seconds BETWEEN 0 AND 3600),
  tags text[] NOT NULL DEFAULT '{}',
  language text,
  current_viewers integer NOT NULL DEFAULT 0 CHECK (current_viewers >= 0),
  peak_viewers integer NOT NULL DEFAULT 0 CHECK (peak_viewers >= 0),
  total_views integer NOT NULL DEFAULT 0 CHECK (total_views >= 0),
  total_reactions integer NOT NULL DEFAULT 0 CHECK (total_reactions >= 0),
  total_chat_messages integer NOT NULL DEFAULT 0 CHECK (total_chat_messages >= 0),
  started_at timestamptz,
  ended_at timestamptz,
  duration_seconds integer,
  recording_url text,
  end_reason text,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The guide's index for "live streams of a channel", and one for the broadcaster's own list.
CREATE INDEX nchat_streams_status_channel_idx ON nchat_streams (status, channel_id);
CREATE INDEX nchat_streams_channel_created_idx ON nchat_streams (channel_id, created_at DESC);
CREATE INDEX nchat_streams_broadcaster_idx ON nchat_streams (broadcaster_id);
CREATE INDEX nchat_streams_scheduled_idx ON nchat_streams (scheduled_at) WHERE status = 'scheduled';

CREATE TABLE nchat_stream_viewers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  viewer_session_id text NOT NULL,
  ip_address inet,
  user_agent text,
  quality text,
  joined_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  left_at timestamptz,
  watch_duration_seconds integer NOT NULL DEFAULT 0 CHECK (watch_duration_seconds >= 0),
  buffering_ms bigint NOT NULL DEFAULT 0 CHECK (buffering_ms >= 0),
  quality_switches integer NOT NULL DEFAULT 0,
  sent_chat_messages integer NOT NULL DEFAULT 0,
  sent_reactions integer NOT NULL DEFAULT 0,
  metadata jsonb NOT NULL DEFAULT '{}',
  UNIQUE (stream_id, viewer_session_id)
);
CREATE INDEX nchat_stream_viewers_active_idx ON nchat_stream_viewers (stream_id) WHERE left_at IS NULL;
CREATE INDEX nchat_stream_viewers_user_idx ON nchat_stream_viewers (user_id);

-- Partitioned by month as the guide asks: metrics arrive every 5 s per live stream and are
-- archived or dropped a month at a time. A default partition catches any month that has no
-- partition yet, so an insert never fails for want of one.
CREATE TABLE nchat_stream_quality_metrics (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  current_viewer_count integer NOT NULL DEFAULT 0,
  bitrate_kbps integer,
  upload_bitrate_kbps integer,
  fps numeric,
  resolution text,
  dropped_frames integer,
  latency_ms integer,
  packet_loss_percent numeric CHECK (packet_loss_percent IS NULL OR packet_loss_percent BETWEEN 0 AND 100),
  jitter_ms numeric,
  rtt_ms numeric,
  encoder_speed numeric,
  health_score integer CHECK (health_score IS NULL OR health_score BETWEEN 0 AND 100),
  metadata jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE TABLE nchat_stream_quality_metrics_default PARTITION OF nchat_stream_quality_metrics DEFAULT;
CREATE INDEX nchat_stream_quality_metrics_stream_idx ON nchat_stream_quality_metrics (stream_id, recorded_at);

-- Creates the partition for the month holding `at`; called at migration time and by the
-- scheduler ahead of each new month.
CREATE FUNCTION nchat.ensure_quality_metrics_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  start_ts timestamptz := date_trunc('month', at);
  part text := 'nchat_stream_quality_metrics_' || to_char(start_ts, 'YYYY_MM');
BEGIN
  IF to_regclass(part) IS NULL THEN
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF nchat_stream_quality_metrics FOR VALUES FROM (%L) TO (%L)',
      part, start_ts, start_ts + interval '1 month');
  END IF;
  RETURN part;
END $$;
SELECT nchat.ensure_quality_metrics_partition(now());
SELECT nchat.ensure_quality_metrics_partition(now() + interval '1 month');

CREATE TABLE nchat_stream_chat_messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  content text NOT NULL CHECK (length(content) BETWEEN 1 AND 500),
  is_pinned boolean NOT NULL DEFAULT false,
  pinned_at timestamptz,
  pinned_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  is_deleted boolean NOT NULL DEFAULT false,
  deleted_at timestamptz,
  deleted_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_chat_messages_stream_idx ON nchat_stream_chat_messages (stream_id, created_at);
CREATE INDEX nchat_stream_chat_messages_user_idx ON nchat_stream_chat_messages (user_id, created_at);

CREATE TABLE nchat_stream_reactions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  emoji text NOT NULL CHECK (length(emoji) BETWEEN 1 AND 16),
  position_x numeric CHECK (position_x IS NULL OR position_x BETWEEN 0 AND 100),
  position_y numeric CHECK (position_y IS NULL OR position_y BETWEEN 0 AND 100),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_reactions_stream_idx ON nchat_stream_reactions (stream_id, created_at);

CREATE TABLE nchat_stream_recordings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  kind text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'clip')),
  status text NOT NULL DEFAULT 'ready' CHECK (status IN ('recording', 'processing', 'ready', 'failed', 'deleted')),
  url text,
  thumbnail_url text,
  duration_seconds numeric,
  size_bytes bigint,
  renditions text[] NOT NULL DEFAULT '{}',
  clip_start_seconds numeric,
  clip_end_seconds numeric,
  created_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_recordings_stream_idx ON nchat_stream_recordings (stream_id, created_at);

CREATE TABLE nchat_stream_questions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  content text NOT NULL CHECK (length(content) BETWEEN 1 AND 500),
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'dismissed')),
  upvotes integer NOT NULL DEFAULT 0 CHECK (upvotes >= 0),
  answer text,
  answered_at timestamptz,
  answered_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_questions_stream_idx ON nchat_stream_questions (stream_id, upvotes DESC, created_at);

CREATE TABLE nchat_stream_question_votes (
  question_id uuid NOT NULL REFERENCES nchat_stream_questions (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (question_id, user_id)
);

-- A ban with expires_at NULL is permanent; a timeout is a ban that expires. A ban names either a
-- stream or a whole channel.
CREATE TABLE nchat_stream_bans (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id uuid REFERENCES nchat_channels (id) ON DELETE CASCADE,
  stream_id uuid REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  banned_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  reason text,
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (channel_id IS NOT NULL OR stream_id IS NOT NULL)
);
CREATE INDEX nchat_stream_bans_lookup_idx ON nchat_stream_bans (user_id, stream_id, channel_id);

-- Opt-in for scheduled-stream reminders.
CREATE TABLE nchat_stream_reminders (
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, user_id)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['nchat_users', 'nchat_channels', 'nchat_streams', 'nchat_stream_chat_messages',
                           'nchat_stream_recordings', 'nchat_stream_questions'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at()',
                   t || '_updated_at', t);
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Authorization helpers. SECURITY DEFINER so that a policy on one table can look at another
-- without recursing through that table's own policies; each returns only a yes/no or a role.
-- Policies call them once per row, so each is one flat statement (no nested definer calls) and
-- has no SET clause (a SET search_path costs a GUC save/restore on every call, about 5x slower on
-- a 5,000-row chat read); instead every table is schema-qualified.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION nchat.channel_role(channel uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT m.role FROM public.nchat_channel_members m WHERE m.channel_id = channel AND m.user_id = nchat.user_id()
$$;

CREATE FUNCTION nchat.can_read_channel(channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_channels c
    WHERE c.id = channel
      AND (NOT c.is_private OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m WHERE m.channel_id = c.id AND m.user_id = nchat.user_id())))
$$;

CREATE FUNCTION nchat.can_read_stream(stream uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_streams s JOIN public.nchat_channels c ON c.id = s.channel_id
    WHERE s.id = stream
      AND (NOT c.is_private OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m WHERE m.channel_id = c.id AND m.user_id = nchat.user_id())))
$$;

-- Broadcaster, the channel's owner/admin/moderator, or platform staff.
CREATE FUNCTION nchat.can_manage_stream(stream uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_streams s
    WHERE s.id = stream
      AND (s.broadcaster_id = nchat.user_id() OR EXISTS (
        SELECT 1 FROM public.nchat_channel_members m
        WHERE m.channel_id = s.channel_id AND m.user_id = nchat.user_id()
          AND m.role IN ('owner', 'admin', 'moderator'))))
$$;

CREATE FUNCTION nchat.is_broadcaster(stream uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT EXISTS (SELECT 1 FROM public.nchat_streams s WHERE s.id = stream AND s.broadcaster_id = nchat.user_id())
$$;

-- The stream key is a secret of its broadcaster: the column itself is not granted to request
-- roles below admin, and this function answers it for the broadcaster alone (NULL otherwise).
CREATE FUNCTION nchat.stream_key(stream uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT s.stream_key FROM public.nchat_streams s
  WHERE s.id = stream AND (s.broadcaster_id = nchat.user_id() OR nchat.is_admin())
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA nchat TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- ---------------------------------------------------------------------------------------------
-- Grants (what each role may touch at all) and policies (which rows).
-- ---------------------------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'nchat\_%'
                                            AND tablename NOT LIKE 'nchat\_stream\_quality\_metrics\_%'
                                            AND tablename <> 'nchat_schema_migrations' LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO nchat_admin', t);
    EXECUTE format('CREATE POLICY admin_all ON %I TO nchat_admin USING (true) WITH CHECK (true)', t);
  END LOOP;
END $$;

-- users: public profiles; email only for signed-in roles; you edit yourself.
GRANT SELECT (id, username, display_name, avatar_url, status, created_at, updated_at)
  ON nchat_users TO nchat_anonymous;
GRANT SELECT ON nchat_users TO nchat_user, nchat_moderator;
GRANT UPDATE (display_name, avatar_url, status, metadata) ON nchat_users TO nchat_user, nchat_moderator;
CREATE POLICY read_all ON nchat_users FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator USING (true);
CREATE POLICY update_self ON nchat_users FOR UPDATE TO nchat_user, nchat_moderator
  USING (id = nchat.user_id()) WITH CHECK (id = nchat.user_id());

-- channels: public ones to everyone, private ones to members; owners edit.
GRANT SELECT ON nchat_channels TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (id, name, slug, description, is_private, owner_id, metadata) ON nchat_channels TO nchat_user, nchat_moderator;
GRANT UPDATE (name, description, is_private, metadata) ON nchat_channels TO nchat_user, nchat_moderator;
-- The row's own columns come first: a channel being inserted with RETURNING is not yet visible to
-- the helper's lookup, but its owner and privacy are.
CREATE POLICY read_visible ON nchat_channels FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (NOT is_private OR owner_id = nchat.user_id() OR nchat.can_read_channel(id));
CREATE POLICY insert_own ON nchat_channels FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (owner_id = nchat.user_id());
CREATE POLICY update_owner ON nchat_channels FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.is_staff() OR nchat.channel_role(id) IN ('owner', 'admin'))
  WITH CHECK (nchat.is_staff() OR nchat.channel_role(id) IN ('owner', 'admin'));

-- channel members: visible with the channel; owners/admins manage; you may leave.
GRANT SELECT ON nchat_channel_members TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (channel_id, user_id, role) ON nchat_channel_members TO nchat_user, nchat_moderator;
GRANT UPDATE (role) ON nchat_channel_members TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_channel_members TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_channel_members FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_channel(channel_id));
-- A new channel's owner adds themself; after that, owners/admins add others. Joining a public
-- channel as a plain member is allowed.
CREATE POLICY insert_managed ON nchat_channel_members FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (
    nchat.channel_role(channel_id) IN ('owner', 'admin')
    OR (user_id = nchat.user_id() AND role = 'owner'
        AND EXISTS (SELECT 1 FROM nchat_channels c WHERE c.id = channel_id AND c.owner_id = nchat.user_id()))
    OR (user_id = nchat.user_id() AND role = 'member'
        AND EXISTS (SELECT 1 FROM nchat_channels c WHERE c.id = channel_id AND NOT c.is_private)));
CREATE POLICY update_managed ON nchat_channel_members FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.channel_role(channel_id) IN ('owner', 'admin'))
  WITH CHECK (nchat.channel_role(channel_id) IN ('owner', 'admin'));
CREATE POLICY delete_managed_or_self ON nchat_channel_members FOR DELETE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.channel_role(channel_id) IN ('owner', 'admin'));

-- follows and subscriptions: public facts; you follow as yourself; subscriptions are admin-made.
GRANT SELECT ON nchat_user_follows TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT, DELETE ON nchat_user_follows TO nchat_user, nchat_moderator;
CREATE POLICY read_all ON nchat_user_follows FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator USING (true);
CREATE POLICY write_self ON nchat_user_follows FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (follower_id = nchat.user_id());
CREATE POLICY delete_self ON nchat_user_follows FOR DELETE TO nchat_user, nchat_moderator
  USING (follower_id = nchat.user_id());
GRANT SELECT ON nchat_channel_subscriptions TO nchat_user, nchat_moderator;
CREATE POLICY read_own ON nchat_channel_subscriptions FOR SELECT TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.is_staff() OR nchat.channel_role(channel_id) IN ('owner', 'admin'));

-- streams: readable with their channel; created by channel members as themselves; managed by
-- the broadcaster and the channel's staff. stream_key is withheld (see nchat.stream_key).
GRANT SELECT (id, channel_id, broadcaster_id, title, description, thumbnail_url, scheduled_at, status,
              ingest_url, hls_manifest_url, dash_manifest_url, max_resolution, bitrate_kbps, fps, is_recorded,
              enable_chat, enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language,
              current_viewers, peak_viewers, total_views, total_reactions, total_chat_messages, started_at,
              ended_at, duration_seconds, recording_url, end_reason, metadata, created_at, updated_at)
  ON nchat_streams TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (id, channel_id, broadcaster_id, title, description, thumbnail_url, scheduled_at, stream_key,
              max_resolution, bitrate_kbps, fps, is_recorded, enable_chat, enable_reactions, enable_qa,
              chat_mode, slow_mode_seconds, tags, language, metadata)
  ON nchat_streams TO nchat_user, nchat_moderator;
GRANT UPDATE (title, description, thumbnail_url, scheduled_at, status, stream_key, ingest_url,
              hls_manifest_url, dash_manifest_url, max_resolution, bitrate_kbps, fps, is_recorded, enable_chat,
              enable_reactions, enable_qa, chat_mode, slow_mode_seconds, tags, language, current_viewers,
              peak_viewers, total_views, total_reactions, total_chat_messages, started_at, ended_at,
              duration_seconds, recording_url, end_reason, metadata)
  ON nchat_streams TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_streams TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_streams FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_channel(channel_id));
CREATE POLICY insert_member ON nchat_streams FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (broadcaster_id = nchat.user_id()
              AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator', 'member'));
CREATE POLICY update_manager ON nchat_streams FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(id)) WITH CHECK (nchat.can_manage_stream(id));
CREATE POLICY delete_manager ON nchat_streams FOR DELETE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(id));

-- viewers: your own sessions, and the broadcaster's view of their audience. Anonymous viewers
-- join public streams; their rows are written through the join operation.
GRANT SELECT ON nchat_stream_viewers TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, viewer_session_id, ip_address, user_agent, quality, metadata)
  ON nchat_stream_viewers TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT UPDATE (quality, last_seen_at, left_at, watch_duration_seconds, buffering_ms, quality_switches,
              sent_chat_messages, sent_reactions, metadata)
  ON nchat_stream_viewers TO nchat_user, nchat_moderator;
CREATE POLICY read_own_or_broadcaster ON nchat_stream_viewers FOR SELECT TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id));
CREATE POLICY insert_self ON nchat_stream_viewers FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(stream_id));
CREATE POLICY insert_anonymous ON nchat_stream_viewers FOR INSERT TO nchat_anonymous
  WITH CHECK (user_id IS NULL AND nchat.can_read_stream(stream_id));
CREATE POLICY update_own ON nchat_stream_viewers FOR UPDATE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id))
  WITH CHECK (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id));

-- quality metrics: the broadcaster (or the server, as admin) writes; stream managers read.
GRANT SELECT, INSERT ON nchat_stream_quality_metrics TO nchat_user, nchat_moderator;
CREATE POLICY read_manager ON nchat_stream_quality_metrics FOR SELECT TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id));
CREATE POLICY insert_broadcaster ON nchat_stream_quality_metrics FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (nchat.is_broadcaster(stream_id));

-- chat: readable with the stream; posted only as yourself; authors and stream managers moderate.
GRANT SELECT ON nchat_stream_chat_messages TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, content, metadata) ON nchat_stream_chat_messages TO nchat_user, nchat_moderator;
GRANT UPDATE (content, is_pinned, pinned_at, pinned_by, is_deleted, deleted_at, deleted_by, metadata)
  ON nchat_stream_chat_messages TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_stream_chat_messages FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_stream(stream_id));
CREATE POLICY insert_self ON nchat_stream_chat_messages FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(stream_id));
CREATE POLICY update_author_or_manager ON nchat_stream_chat_messages FOR UPDATE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id))
  WITH CHECK (user_id = nchat.user_id() OR nchat.can_manage_stream(stream_id));

-- reactions: readable with the stream; sent only as yourself.
GRANT SELECT ON nchat_stream_reactions TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, emoji, position_x, position_y) ON nchat_stream_reactions TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_stream_reactions FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_stream(stream_id));
CREATE POLICY insert_self ON nchat_stream_reactions FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(stream_id));

-- recordings: readable with the stream; written and deleted by stream managers (the server
-- writes them as admin).
GRANT SELECT ON nchat_stream_recordings TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT, UPDATE, DELETE ON nchat_stream_recordings TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_stream_recordings FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_stream(stream_id));
CREATE POLICY write_manager ON nchat_stream_recordings FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (nchat.can_manage_stream(stream_id));
CREATE POLICY update_manager ON nchat_stream_recordings FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id)) WITH CHECK (nchat.can_manage_stream(stream_id));
CREATE POLICY delete_manager ON nchat_stream_recordings FOR DELETE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id));

-- Q&A: readable with the stream; asked as yourself; answered by stream managers.
GRANT SELECT ON nchat_stream_questions TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, user_id, content) ON nchat_stream_questions TO nchat_user, nchat_moderator;
GRANT UPDATE (status, upvotes, answer, answered_at, answered_by) ON nchat_stream_questions TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_stream_questions FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_stream(stream_id));
CREATE POLICY insert_self ON nchat_stream_questions FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(stream_id));
CREATE POLICY update_manager ON nchat_stream_questions FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id)) WITH CHECK (nchat.can_manage_stream(stream_id));

GRANT SELECT ON nchat_stream_question_votes TO nchat_user, nchat_moderator;
GRANT INSERT (question_id, user_id) ON nchat_stream_question_votes TO nchat_user, nchat_moderator;
CREATE POLICY read_own ON nchat_stream_question_votes FOR SELECT TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id());
CREATE POLICY insert_self ON nchat_stream_question_votes FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND EXISTS (
    SELECT 1 FROM nchat_stream_questions q WHERE q.id = question_id AND nchat.can_read_stream(q.stream_id)));

-- bans: stream managers see and manage them; a user sees their own.
GRANT SELECT ON nchat_stream_bans TO nchat_user, nchat_moderator;
GRANT INSERT (channel_id, stream_id, user_id, banned_by, reason, expires_at) ON nchat_stream_bans TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_stream_bans TO nchat_user, nchat_moderator;
CREATE POLICY read_own_or_manager ON nchat_stream_bans FOR SELECT TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id() OR nchat.is_staff()
         OR (stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
         OR (channel_id IS NOT NULL AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator')));
CREATE POLICY write_manager ON nchat_stream_bans FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (banned_by = nchat.user_id() AND user_id <> nchat.user_id() AND (
    nchat.is_staff()
    OR (stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
    OR (channel_id IS NOT NULL AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator'))));
CREATE POLICY delete_manager ON nchat_stream_bans FOR DELETE TO nchat_user, nchat_moderator
  USING (nchat.is_staff()
         OR (stream_id IS NOT NULL AND nchat.can_manage_stream(stream_id))
         OR (channel_id IS NOT NULL AND nchat.channel_role(channel_id) IN ('owner', 'admin', 'moderator')));

-- reminders: your own opt-ins.
GRANT SELECT, INSERT, DELETE ON nchat_stream_reminders TO nchat_user, nchat_moderator;
CREATE POLICY own ON nchat_stream_reminders FOR ALL TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id())
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(stream_id));
