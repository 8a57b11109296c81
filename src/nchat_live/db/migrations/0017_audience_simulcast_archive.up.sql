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
