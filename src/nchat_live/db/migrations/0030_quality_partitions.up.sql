-- Quality-metrics partitions the scheduler can make.
--
-- 0001's ensure_quality_metrics_partition ran as its caller. The scheduler calls it as nchat_admin, which
-- owns neither the parent table nor CREATE on schema public, so as soon as the month 32 days ahead had no
-- partition (the last days of the month after the migration's own two), every scheduler tick failed whole:
-- reminders, expiry of stale streams and silent viewers, poll closing and the chat-tally fold all stopped.
--
-- Now it runs as its owner and only the server may call it (0018's rule, db/permissions.py).
-- Months are UTC months, as the archiver's month_bounds reads a partition's name; 0001 used the session's
-- time zone. Rows of the month that already sit in the default partition (written while no partition
-- existed) move into the new one: ATTACH refuses a range the default partition holds rows of.
CREATE OR REPLACE FUNCTION nchat.ensure_quality_metrics_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  start_ts timestamptz := date_trunc('month', at, 'UTC');
  end_ts timestamptz := start_ts + interval '1 month';
  part text := 'nchat_stream_quality_metrics_' || to_char(start_ts AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
  IF to_regclass('public.' || quote_ident(part)) IS NOT NULL THEN
    RETURN part;
  END IF;
  -- Two callers making the same month at once: the second waits here and then finds the first's table.
  LOCK TABLE public.nchat_stream_quality_metrics_default IN SHARE ROW EXCLUSIVE MODE;
  IF to_regclass('public.' || quote_ident(part)) IS NOT NULL THEN
    RETURN part;
  END IF;
  EXECUTE format('CREATE TABLE public.%I (LIKE public.nchat_stream_quality_metrics INCLUDING DEFAULTS '
                 'INCLUDING CONSTRAINTS)', part);
  EXECUTE format('WITH moved AS (DELETE FROM public.nchat_stream_quality_metrics_default '
                 'WHERE recorded_at >= $1 AND recorded_at < $2 RETURNING *) INSERT INTO public.%I SELECT * FROM moved',
                 part) USING start_ts, end_ts;
  EXECUTE format('ALTER TABLE public.nchat_stream_quality_metrics ATTACH PARTITION public.%I '
                 'FOR VALUES FROM (%L) TO (%L)', part, start_ts, end_ts);
  RETURN part;
END $$;
REVOKE ALL ON FUNCTION nchat.ensure_quality_metrics_partition(timestamptz)
  FROM PUBLIC, nchat_anonymous, nchat_user, nchat_moderator;
GRANT EXECUTE ON FUNCTION nchat.ensure_quality_metrics_partition(timestamptz) TO nchat_admin;
