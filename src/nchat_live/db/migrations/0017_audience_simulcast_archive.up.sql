-- 0017: audience analytics (country, device, OS, browser, playback bitrate per viewer session).

-- =============================================================================================
-- 1. Audience: what a viewer session was watched from. The address itself is not kept by default
-- (resolvers/audience.py passes viewer_join a keyed pseudonym in 2001:db8::/32, the documentation
-- prefix, unless NCHAT_ANALYTICS_STORE_IP=true), so these derived columns are what analytics read.
-- =============================================================================================

ALTER TABLE nchat_stream_viewers
  ADD COLUMN country text CHECK (country ~ '^[A-Z]{2}$'),
  ADD COLUMN device_class text CHECK (device_class IN ('desktop', 'mobile', 'tablet', 'tv', 'bot', 'other')),
  ADD COLUMN os_family text CHECK (length(os_family) <= 64),
  ADD COLUMN browser_family text CHECK (length(browser_family) <= 64),
  ADD COLUMN bitrate_kbps_sum bigint NOT NULL DEFAULT 0 CHECK (bitrate_kbps_sum >= 0),
  ADD COLUMN bitrate_samples integer NOT NULL DEFAULT 0 CHECK (bitrate_samples >= 0);

GRANT SELECT (country, device_class, os_family, browser_family, bitrate_kbps_sum, bitrate_samples)
  ON nchat_stream_viewers TO nchat_user, nchat_moderator, nchat_admin;
GRANT UPDATE (country, device_class, os_family, browser_family, bitrate_kbps_sum, bitrate_samples)
  ON nchat_stream_viewers TO nchat_admin;

-- Describe the caller's open session once (the first description stays).
CREATE FUNCTION nchat.viewer_describe(p_token text, p_country text, p_device text, p_os text, p_browser text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE nchat_stream_viewers x
     SET country = coalesce(x.country, p_country), device_class = coalesce(x.device_class, p_device),
         os_family = coalesce(x.os_family, left(p_os, 64)), browser_family = coalesce(x.browser_family, left(p_browser, 64))
   WHERE x.viewer_session_id = p_token AND x.left_at IS NULL
     AND (x.user_id IS NULL OR x.user_id = nchat.user_id() OR nchat.is_admin());
  RETURN FOUND;
END $$;

-- One playback bitrate sample from the player (kbit/s, 0..1 000 000).
CREATE FUNCTION nchat.viewer_playback(p_token text, p_bitrate_kbps integer)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_bitrate_kbps IS NULL OR p_bitrate_kbps < 0 OR p_bitrate_kbps > 1000000 THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('bitrateKbps %s is outside 0..1000000', p_bitrate_kbps));
  END IF;
  UPDATE nchat_stream_viewers x
     SET bitrate_kbps_sum = x.bitrate_kbps_sum + p_bitrate_kbps, bitrate_samples = x.bitrate_samples + 1
   WHERE x.viewer_session_id = p_token AND x.left_at IS NULL
     AND (x.user_id IS NULL OR x.user_id = nchat.user_id() OR nchat.is_admin());
  RETURN FOUND;
END $$;

REVOKE ALL ON FUNCTION nchat.viewer_describe(text, text, text, text, text),
                       nchat.viewer_playback(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.viewer_describe(text, text, text, text, text),
                          nchat.viewer_playback(text, integer)
  TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- =============================================================================================
-- 2. Simulcast destinations: the broadcaster's RTMP/RTMPS targets for a stream. The key is
-- write-only: insertable and updatable by the stream's managers, readable by no role at all (not
-- even nchat_admin); the media worker reads it through nchat.simulcast_targets(), a definer
-- function only nchat_admin may call. key_hint (its last 4 characters) is what anyone sees.
-- status/last_error/attempts/status_at are the worker's.
-- =============================================================================================

CREATE TABLE nchat_stream_simulcast_destinations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
  url text NOT NULL CHECK (url ~* '^rtmps?://[^/\s]+/\S*$' AND length(url) <= 1000),
  stream_key text NOT NULL CHECK (length(stream_key) BETWEEN 1 AND 500 AND stream_key !~ '\s'),
  key_hint text NOT NULL DEFAULT '',
  rendition text NOT NULL DEFAULT '720p' CHECK (rendition ~ '^[0-9]{3,4}p$'),
  enabled boolean NOT NULL DEFAULT true,
  status text NOT NULL DEFAULT 'idle' CHECK (status IN ('idle', 'connecting', 'live', 'error', 'stopped')),
  last_error text,
  attempts integer NOT NULL DEFAULT 0,
  status_at timestamptz,
  created_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_simulcast_stream_idx ON nchat_stream_simulcast_destinations (stream_id);
CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_simulcast_destinations
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();

ALTER TABLE nchat_stream_simulcast_destinations ENABLE ROW LEVEL SECURITY;
ALTER TABLE nchat_stream_simulcast_destinations FORCE ROW LEVEL SECURITY;
GRANT SELECT (id, stream_id, name, url, key_hint, rendition, enabled, status, last_error, attempts, status_at,
              created_by, created_at, updated_at),
      INSERT, UPDATE, DELETE ON nchat_stream_simulcast_destinations TO nchat_admin;
CREATE POLICY admin_all ON nchat_stream_simulcast_destinations TO nchat_admin USING (true) WITH CHECK (true);

GRANT SELECT (id, stream_id, name, url, key_hint, rendition, enabled, status, last_error, attempts, status_at,
              created_by, created_at, updated_at) ON nchat_stream_simulcast_destinations TO nchat_user, nchat_moderator;
GRANT INSERT (stream_id, name, url, stream_key, rendition, enabled, created_by)
  ON nchat_stream_simulcast_destinations TO nchat_user, nchat_moderator;
GRANT UPDATE (name, url, stream_key, rendition, enabled) ON nchat_stream_simulcast_destinations
  TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_stream_simulcast_destinations TO nchat_user, nchat_moderator;
CREATE POLICY read_manager ON nchat_stream_simulcast_destinations FOR SELECT TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id));
CREATE POLICY insert_manager ON nchat_stream_simulcast_destinations FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (nchat.can_manage_stream(stream_id));
CREATE POLICY update_manager ON nchat_stream_simulcast_destinations FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id)) WITH CHECK (nchat.can_manage_stream(stream_id));
CREATE POLICY delete_manager ON nchat_stream_simulcast_destinations FOR DELETE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id));

-- created_by is the caller; the hint follows the key; a changed target starts over (idle, no error).
CREATE FUNCTION nchat.simulcast_preset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' AND nchat.acting_as_request_role() THEN
    NEW.created_by := nchat.user_id();
  END IF;
  NEW.name := btrim(NEW.name);
  NEW.key_hint := CASE WHEN length(NEW.stream_key) > 8 THEN '…' || right(NEW.stream_key, 4) ELSE '…' END;
  IF TG_OP = 'UPDATE' AND (NEW.url IS DISTINCT FROM OLD.url OR NEW.stream_key IS DISTINCT FROM OLD.stream_key)
     AND nchat.acting_as_request_role() THEN
    NEW.status := 'idle';
    NEW.last_error := NULL;
    NEW.attempts := 0;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER a0_preset_caller BEFORE INSERT OR UPDATE ON nchat_stream_simulcast_destinations
  FOR EACH ROW EXECUTE FUNCTION nchat.simulcast_preset();

-- The enabled destinations of a stream with their keys: the media worker's alone.
CREATE FUNCTION nchat.simulcast_targets(p_stream uuid)
RETURNS TABLE (id uuid, name text, url text, stream_key text, rendition text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT nchat.is_admin() THEN
    PERFORM nchat.refuse(403, 'permission-error', 'simulcast keys are the media worker''s');
  END IF;
  RETURN QUERY SELECT d.id, d.name, d.url, d.stream_key, d.rendition FROM nchat_stream_simulcast_destinations d
                WHERE d.stream_id = p_stream AND d.enabled ORDER BY d.created_at;
END $$;
REVOKE ALL ON FUNCTION nchat.simulcast_targets(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.simulcast_targets(uuid) TO nchat_admin;

-- =============================================================================================
-- 3. Archive: a month of quality metrics leaves the database once exported (media/extras/archive.py).
-- The archiver (nchat_admin) exports the month through the parent table, then retires the
-- partition here: detached and dropped only if it holds exactly the rows that were exported.
-- =============================================================================================

CREATE FUNCTION nchat.retire_quality_partition(p_partition text, p_exported bigint)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  n bigint;
BEGIN
  IF NOT nchat.is_admin() THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the server archives metrics');
  END IF;
  IF p_partition !~ '^nchat_stream_quality_metrics_[0-9]{4}_[0-9]{2}$' OR NOT EXISTS (
      SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'public.nchat_stream_quality_metrics'::regclass AND c.relname = p_partition) THEN
    PERFORM nchat.refuse(404, 'not-found', format('%s is not a quality-metrics partition', p_partition));
  END IF;
  EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', p_partition);
  EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO n;
  IF n <> p_exported THEN
    PERFORM nchat.refuse(409, 'conflict',
                         format('%s holds %s rows, %s were exported: export it again', p_partition, n, p_exported));
  END IF;
  EXECUTE format('ALTER TABLE nchat_stream_quality_metrics DETACH PARTITION %I', p_partition);
  EXECUTE format('DROP TABLE %I', p_partition);
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION nchat.retire_quality_partition(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nchat.retire_quality_partition(text, bigint) TO nchat_admin;
