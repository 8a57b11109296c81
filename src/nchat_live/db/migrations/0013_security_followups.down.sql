-- Back to 0012's rates (counted over the tables) and 0011's grants.
CREATE OR REPLACE FUNCTION nchat.stream_quota_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
  at timestamptz;
  max_rate numeric := nchat.limit_value('streams_per_hour', 60);
  max_scheduled numeric := nchat.limit_value('scheduled_streams', 100);
  n bigint;
  oldest timestamptz;
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
  SELECT count(*), min(s.created_at) INTO n, oldest FROM nchat_streams s
   WHERE s.broadcaster_id = me AND s.created_at > at - interval '1 hour' AND s.created_at <= at;
  PERFORM nchat.check_rate('new streams', oldest, n, max_rate, 3600, at);
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
  n bigint;
  oldest timestamptz;
BEGIN
  IF nchat.is_admin() OR me IS NULL THEN
    RETURN NEW;
  END IF;
  PERFORM nchat.quota_lock('clips', me);
  at := nchat.rule_clock();
  NEW.created_by := me;
  NEW.created_at := at;
  SELECT count(*), min(r.created_at) INTO n, oldest FROM nchat_stream_recordings r
   WHERE r.kind = 'clip' AND r.created_by = me AND r.created_at > at - interval '1 hour' AND r.created_at <= at;
  PERFORM nchat.check_rate('clips', oldest, n, max_rate, 3600, at);
  RETURN NEW;
END $$;

DROP FUNCTION IF EXISTS nchat.log_creation(text, uuid, text, numeric, timestamptz);
DROP TABLE IF EXISTS nchat.creation_log;

DROP FUNCTION IF EXISTS nchat.my_email();
GRANT SELECT (email) ON nchat_users TO nchat_user, nchat_moderator;

DROP FUNCTION IF EXISTS nchat.clip_set_url(uuid, text);
GRANT INSERT (url, thumbnail_url) ON nchat_stream_recordings TO nchat_user, nchat_moderator;

DROP TRIGGER IF EXISTS nchat_stream_quality_metrics_rules ON nchat_stream_quality_metrics;
DROP FUNCTION IF EXISTS nchat.quality_metric_rules();
DROP FUNCTION IF EXISTS nchat.check_bound(text, numeric, numeric, numeric);

DROP FUNCTION IF EXISTS nchat.publish_admission(uuid);
