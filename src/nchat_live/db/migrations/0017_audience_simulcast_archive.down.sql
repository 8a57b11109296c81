DROP FUNCTION IF EXISTS nchat.retire_quality_partition(text, bigint);
DROP FUNCTION IF EXISTS nchat.simulcast_targets(uuid);
DROP TABLE IF EXISTS nchat_stream_simulcast_destinations;
DROP FUNCTION IF EXISTS nchat.simulcast_preset();
DROP FUNCTION IF EXISTS nchat.viewer_playback(text, integer);
DROP FUNCTION IF EXISTS nchat.viewer_describe(text, text, text, text, text);
ALTER TABLE nchat_stream_viewers
  DROP COLUMN IF EXISTS country, DROP COLUMN IF EXISTS device_class, DROP COLUMN IF EXISTS os_family,
  DROP COLUMN IF EXISTS browser_family, DROP COLUMN IF EXISTS bitrate_kbps_sum, DROP COLUMN IF EXISTS bitrate_samples;
