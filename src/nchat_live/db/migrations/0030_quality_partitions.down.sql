-- 0001's text, and 0001's grant (every request role, through the schema-wide grant).
CREATE OR REPLACE FUNCTION nchat.ensure_quality_metrics_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY INVOKER AS $$
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
GRANT EXECUTE ON FUNCTION nchat.ensure_quality_metrics_partition(timestamptz)
  TO PUBLIC, nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;
