-- Follow-ups to issues 12 and 13, the data side:
--   1. ingest admission: a publish is refused (before any media is accepted) when the broadcaster is
--      banned in the stream's channel or would exceed the live-stream quota;
--   2. quality metrics are bounded to what is physically possible, on every request-role path;
--   3. media URLs of clips are the server's: request roles cannot insert url/thumbnail_url, the domain
--      sets the clip's URL through nchat.clip_set_url (a same-origin recordings path of that clip);
--   4. email is readable by its owner (nchat.my_email()) and admins only;
--   5. creation rates (streams, clips) count a server-only creation log, which deletes do not undo.

-- ---------------------------------------------------------------------------------------------
-- 1. Ingest admission (the media server calls it, as the service, before accepting a publisher).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION nchat.publish_admission(p_stream uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
  max_live numeric := nchat.limit_value('live_streams', 10);
  n bigint;
BEGIN
  SELECT id, channel_id, broadcaster_id, status INTO s FROM nchat_streams WHERE id = p_stream;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  -- The same bans recheck (media/manager.py) acts on: of this stream, or channel-wide.
  IF EXISTS (SELECT 1 FROM nchat_stream_bans b
              WHERE b.user_id = s.broadcaster_id AND (b.stream_id = s.id OR b.channel_id = s.channel_id)
                AND (b.expires_at IS NULL OR b.expires_at > now())) THEN
    PERFORM nchat.refuse(403, 'broadcaster-banned', 'the broadcaster is banned in this channel');
  END IF;
  IF s.status <> 'live' THEN
    SELECT count(*) INTO n FROM nchat_streams x
     WHERE x.broadcaster_id = s.broadcaster_id AND x.status = 'live' AND x.id <> s.id;
    IF n >= max_live THEN
      PERFORM nchat.refuse(429, 'quota-exceeded',
                           format('the broadcaster has %s live streams; at most %s may be live at once', n, max_live),
                           jsonb_build_object('limit', max_live));
    END IF;
  END IF;
END $$;
REVOKE ALL ON FUNCTION nchat.publish_admission(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.publish_admission(uuid) TO nchat_admin;

-- ---------------------------------------------------------------------------------------------
-- 2. Quality metrics: every reported figure within what a stream can physically show.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION nchat.quality_metric_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  height integer;
  width integer;
  parts text[];
BEGIN
  IF NOT nchat.acting_as_request_role() THEN
    RETURN NEW;
  END IF;
  PERFORM nchat.check_bound('bitrateKbps', NEW.bitrate_kbps, 0, 1000000);
  PERFORM nchat.check_bound('uploadBitrateKbps', NEW.upload_bitrate_kbps, 0, 1000000);
  PERFORM nchat.check_bound('fps', NEW.fps, 0, 240);
  PERFORM nchat.check_bound('droppedFrames', NEW.dropped_frames, 0, 240 * 60);
  PERFORM nchat.check_bound('latencyMs', NEW.latency_ms, 0, 600000);
  PERFORM nchat.check_bound('packetLossPercent', NEW.packet_loss_percent, 0, 100);
  PERFORM nchat.check_bound('jitterMs', NEW.jitter_ms, 0, 60000);
  PERFORM nchat.check_bound('rttMs', NEW.rtt_ms, 0, 60000);
  PERFORM nchat.check_bound('encoderSpeed', NEW.encoder_speed, 0, 1000);
  PERFORM nchat.check_bound('healthScore', NEW.health_score, 0, 100);
  PERFORM nchat.check_bound('currentViewerCount', NEW.current_viewer_count, 0, 100000000);
  IF NEW.resolution IS NOT NULL THEN
    parts := regexp_match(lower(NEW.resolution), '^\s*(?:([0-9]{1,5})x([0-9]{1,5})|([0-9]{1,5})p)\s*$');
    IF parts IS NULL THEN
      PERFORM nchat.refuse(400, 'validation-failed',
                           format('resolution ''%s'' is not WIDTHxHEIGHT or e.g. 720p', left(NEW.resolution, 40)));
    END IF;
    width := coalesce(parts[1]::integer, 1);
    height := coalesce(parts[2], parts[3])::integer;
    IF width NOT BETWEEN 1 AND 15360 OR height NOT BETWEEN 1 AND 8640 THEN
      PERFORM nchat.refuse(400, 'validation-failed',
                           format('resolution ''%s'' is outside 1x1..15360x8640', NEW.resolution));
    END IF;
  END IF;
  IF NEW.metadata IS NOT NULL AND length(NEW.metadata::text) > 4096 THEN
    PERFORM nchat.refuse(400, 'validation-failed', 'metadata is larger than 4096 bytes');
  END IF;
  RETURN NEW;
END $$;

CREATE FUNCTION nchat.check_bound(field text, value numeric, low numeric, high numeric) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NOT NULL AND (value < low OR value > high OR value = 'NaN'::numeric) THEN
    PERFORM nchat.refuse(400, 'validation-failed', format('%s %s is outside %s..%s', field, value, low, high),
                         jsonb_build_object('field', field));
  END IF;
END $$;

CREATE TRIGGER nchat_stream_quality_metrics_rules BEFORE INSERT ON nchat_stream_quality_metrics
  FOR EACH ROW EXECUTE FUNCTION nchat.quality_metric_rules();

-- ---------------------------------------------------------------------------------------------
-- 3. Clip URLs are the server's.
-- ---------------------------------------------------------------------------------------------
REVOKE INSERT (url, thumbnail_url) ON nchat_stream_recordings FROM nchat_user, nchat_moderator;

-- createClip's row gets its URL here: the clip's own path under the recordings route, once.
CREATE FUNCTION nchat.clip_set_url(p_clip uuid, p_url text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  r record;
BEGIN
  SELECT id, stream_id, kind, created_by, url INTO r FROM nchat_stream_recordings WHERE id = p_clip FOR UPDATE;
  IF NOT FOUND OR r.kind <> 'clip' OR r.url IS NOT NULL
     OR (r.created_by IS DISTINCT FROM nchat.user_id() AND NOT nchat.is_admin()) THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the server sets a clip''s URL, once');
  END IF;
  IF p_url IS NULL OR p_url !~ ('^(https?://[^/?#@\\]+)?/recordings/' || r.stream_id || '/clips/' || r.id || '/[A-Za-z0-9._-]+$') THEN
    PERFORM nchat.refuse(400, 'validation-failed', 'a clip''s URL is its path under /recordings/');
  END IF;
  UPDATE nchat_stream_recordings SET url = p_url WHERE id = p_clip;
  RETURN p_url;
END $$;
REVOKE ALL ON FUNCTION nchat.clip_set_url(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.clip_set_url(uuid, text) TO nchat_user, nchat_moderator, nchat_admin;

-- ---------------------------------------------------------------------------------------------
-- 4. Email: yours alone (and admins').
-- ---------------------------------------------------------------------------------------------
REVOKE SELECT (email) ON nchat_users FROM nchat_anonymous, nchat_user, nchat_moderator;

CREATE FUNCTION nchat.my_email() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT u.email FROM nchat_users u WHERE u.id = nchat.user_id()
$$;
REVOKE ALL ON FUNCTION nchat.my_email() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.my_email() TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- ---------------------------------------------------------------------------------------------
-- 5. Creation log: what the hourly rates count. Server-only; rows older than an hour are pruned.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE nchat.creation_log (
  kind text NOT NULL CHECK (kind IN ('stream', 'clip')),
  user_id uuid NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX nchat_creation_log_idx ON nchat.creation_log (kind, user_id, created_at);
GRANT SELECT ON nchat.creation_log TO nchat_admin;

INSERT INTO nchat.creation_log (kind, user_id, created_at)
  SELECT 'stream', broadcaster_id, created_at FROM nchat_streams
   WHERE broadcaster_id IS NOT NULL AND created_at > now() - interval '1 hour';
INSERT INTO nchat.creation_log (kind, user_id, created_at)
  SELECT 'clip', created_by, created_at FROM nchat_stream_recordings
   WHERE kind = 'clip' AND created_by IS NOT NULL AND created_at > now() - interval '1 hour';

-- Counts the caller's creations of `p_kind` in the hour before `at` (refusing past the rate), then
-- logs this one. The caller holds the per-user advisory lock.
CREATE FUNCTION nchat.log_creation(p_kind text, p_user uuid, what text, max_rate numeric, at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  oldest timestamptz;
BEGIN
  DELETE FROM nchat.creation_log l
   WHERE l.kind = p_kind AND l.user_id = p_user AND l.created_at <= at - interval '1 hour';
  SELECT count(*), min(l.created_at) INTO n, oldest FROM nchat.creation_log l
   WHERE l.kind = p_kind AND l.user_id = p_user AND l.created_at > at - interval '1 hour' AND l.created_at <= at;
  PERFORM nchat.check_rate(what, oldest, n, max_rate, 3600, at);
  INSERT INTO nchat.creation_log (kind, user_id, created_at) VALUES (p_kind, p_user, at);
END $$;

CREATE OR REPLACE FUNCTION nchat.stream_quota_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
  at timestamptz;
  max_rate numeric := nchat.limit_value('streams_per_hour', 60);
  max_scheduled numeric := nchat.limit_value('scheduled_streams', 100);
  n bigint;
BEGIN
  IF nchat.is_admin() OR me IS NULL THEN
    RETURN NEW;
  END IF;
  at := nchat.rule_clock();
  IF TG_OP = 'UPDATE' THEN
    IF NEW.scheduled_at IS DISTINCT FROM OLD.scheduled_at THEN
      PERFORM nchat.check_schedule_window(NEW.scheduled_at, at);
    END IF;
    RETURN NEW;
  END IF;
  PERFORM nchat.check_schedule_window(NEW.scheduled_at, at);
  PERFORM nchat.quota_lock('streams', me);
  NEW.created_at := at;
  PERFORM nchat.log_creation('stream', me, 'new streams', max_rate, at);
  IF NEW.scheduled_at IS NOT NULL AND NEW.scheduled_at > at THEN
    SELECT count(*) INTO n FROM nchat_streams s WHERE s.broadcaster_id = me AND s.status = 'scheduled';
    IF n >= max_scheduled THEN
      PERFORM nchat.refuse(429, 'quota-exceeded',
                           format('you have %s scheduled streams; at most %s are allowed', n, max_scheduled),
                           jsonb_build_object('limit', max_scheduled));
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION nchat.clip_quota_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
  at timestamptz;
  max_rate numeric := nchat.limit_value('clips_per_hour', 120);
BEGIN
  IF nchat.is_admin() OR me IS NULL THEN
    RETURN NEW;
  END IF;
  PERFORM nchat.quota_lock('clips', me);
  at := nchat.rule_clock();
  NEW.created_by := me;
  NEW.created_at := at;
  PERFORM nchat.log_creation('clip', me, 'clips', max_rate, at);
  RETURN NEW;
END $$;
