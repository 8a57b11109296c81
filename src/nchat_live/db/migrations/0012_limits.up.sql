-- Quotas and rates per user on every creating path, and a sane window for scheduledAt, enforced by
-- Postgres so the domain operations (createStream, createClip, askQuestion) and the generic table API
-- (insert_nchat_streams, insert_nchat_channels_one, ...) give the same answer.
--
-- Figures: the `nchat.limits` table, which every server process fills from its settings at start
-- (resolvers/limits.py); a missing name falls back to the default written here, the same as the
-- settings' default. Only the server (nchat_admin) writes it: other roles cannot read or write it.
--
-- Refusals use 0009's mechanism (nchat.refuse): a rate is `rate-limited` (429) with
-- {"retryAfterSeconds", "limit"}; a count of things held at once is `quota-exceeded` (429) with
-- {"limit"}; a scheduledAt outside the window is `invalid-schedule` (400).
--
-- Scope: request roles below admin (as 0009: the server's own writes, imports and admin-secret requests
-- are not judged), except the concurrent-live quota, which holds whoever makes the stream live (the
-- media pipeline does, as the server, when a publisher's frames arrive).
--
-- Counts are exact under concurrency: each rule takes a transaction-level advisory lock per user and
-- kind before counting. Rate clocks are nchat.rule_clock() (0009), never the client's.

CREATE TABLE nchat.limits (
  name text PRIMARY KEY,
  value numeric NOT NULL CHECK (value >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The server's own sessions (Claims.service) run as nchat_admin.
GRANT SELECT, INSERT, UPDATE ON nchat.limits TO nchat_admin;

-- SECURITY DEFINER: the rules run under the request's role, which may not read nchat.limits.
CREATE FUNCTION nchat.limit_value(p_name text, fallback numeric) RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = nchat, pg_temp AS $$
  SELECT coalesce((SELECT l.value FROM nchat.limits l WHERE l.name = p_name), fallback)
$$;

CREATE FUNCTION nchat.quota_lock(kind text, p_user uuid) RETURNS void LANGUAGE sql VOLATILE AS $$
  SELECT pg_advisory_xact_lock(hashtextextended('quota:' || kind || ':' || p_user::text, 0))
$$;

-- At most `max_n` rows since `at - window`: refuse as rate-limited, with the wait until the oldest
-- counted row leaves the window.
CREATE FUNCTION nchat.check_rate(what text, oldest timestamptz, counted bigint, max_n numeric,
                                 window_s numeric, at timestamptz)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  wait numeric;
BEGIN
  IF counted < max_n THEN
    RETURN;
  END IF;
  wait := greatest(1, ceil(extract(epoch FROM oldest - at) + window_s));
  PERFORM nchat.refuse(429, 'rate-limited',
                       format('at most %s %s per %s; wait %s s', max_n, what,
                              CASE WHEN window_s = 3600 THEN 'hour' ELSE trunc(window_s) || ' s' END, wait),
                       jsonb_build_object('retryAfterSeconds', wait, 'limit', max_n));
END $$;

-- ---------------------------------------------------------------------------------------------
-- Channels: owned at once, created per hour.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION nchat.channel_quota_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  me uuid := nchat.user_id();
  at timestamptz;
  max_owned numeric := nchat.limit_value('channels_per_user', 100);
  max_rate numeric := nchat.limit_value('channels_per_hour', 30);
  n bigint;
  oldest timestamptz;
BEGIN
  IF nchat.is_admin() OR me IS NULL THEN
    RETURN NEW;
  END IF;
  PERFORM nchat.quota_lock('channels', me);
  at := nchat.rule_clock();
  NEW.created_at := at;
  SELECT count(*) INTO n FROM nchat_channels c WHERE c.owner_id = me;
  IF n >= max_owned THEN
    PERFORM nchat.refuse(429, 'quota-exceeded', format('you own %s channels; at most %s are allowed', n, max_owned),
                         jsonb_build_object('limit', max_owned));
  END IF;
  SELECT count(*), min(c.created_at) INTO n, oldest FROM nchat_channels c
   WHERE c.owner_id = me AND c.created_at > at - interval '1 hour' AND c.created_at <= at;
  PERFORM nchat.check_rate('new channels', oldest, n, max_rate, 3600, at);
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_channels_quota BEFORE INSERT ON nchat_channels
  FOR EACH ROW EXECUTE FUNCTION nchat.channel_quota_rules();

-- ---------------------------------------------------------------------------------------------
-- Streams: created per hour, scheduled at once, and scheduledAt within the window.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION nchat.check_schedule_window(p_at timestamptz, now_at timestamptz) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
  past_s numeric := nchat.limit_value('schedule_past_s', 300);
  ahead_days numeric := nchat.limit_value('schedule_max_days', 366);
BEGIN
  IF p_at IS NULL THEN
    RETURN;
  END IF;
  IF p_at < now_at - past_s * interval '1 second' THEN
    PERFORM nchat.refuse(400, 'invalid-schedule',
                         format('scheduledAt %s is in the past; schedule a time from now on', p_at),
                         jsonb_build_object('earliest', now_at - past_s * interval '1 second'));
  END IF;
  IF p_at > now_at + ahead_days * interval '1 day' THEN
    PERFORM nchat.refuse(400, 'invalid-schedule',
                         format('scheduledAt %s is more than %s days ahead', p_at, ahead_days),
                         jsonb_build_object('latest', now_at + ahead_days * interval '1 day'));
  END IF;
END $$;

CREATE FUNCTION nchat.stream_quota_rules() RETURNS trigger
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
CREATE TRIGGER nchat_streams_quota BEFORE INSERT OR UPDATE OF scheduled_at ON nchat_streams
  FOR EACH ROW EXECUTE FUNCTION nchat.stream_quota_rules();

-- Live at once, per broadcaster: on the way into 'live', whoever makes the change.
CREATE FUNCTION nchat.live_quota_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  max_live numeric := nchat.limit_value('live_streams', 10);
  n bigint;
BEGIN
  PERFORM nchat.quota_lock('live', NEW.broadcaster_id);
  SELECT count(*) INTO n FROM nchat_streams s
   WHERE s.broadcaster_id = NEW.broadcaster_id AND s.status = 'live' AND s.id <> NEW.id;
  IF n >= max_live THEN
    PERFORM nchat.refuse(429, 'quota-exceeded',
                         format('the broadcaster has %s live streams; at most %s may be live at once', n, max_live),
                         jsonb_build_object('limit', max_live));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_streams_live_quota BEFORE UPDATE OF status ON nchat_streams
  FOR EACH ROW WHEN (NEW.status = 'live' AND OLD.status IS DISTINCT FROM 'live')
  EXECUTE FUNCTION nchat.live_quota_rules();

-- Streams whose scheduled time has passed are looked up by the scheduler's grace cancellation in
-- either waiting status (a past scheduledAt made a stream 'preparing').
CREATE INDEX nchat_streams_waiting_scheduled_idx ON nchat_streams (scheduled_at)
  WHERE status IN ('scheduled', 'preparing');

-- ---------------------------------------------------------------------------------------------
-- Clips: created per hour by one user (created_by is the caller's, whatever the row said).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION nchat.clip_quota_rules() RETURNS trigger
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
CREATE TRIGGER nchat_stream_recordings_clip_quota BEFORE INSERT ON nchat_stream_recordings
  FOR EACH ROW WHEN (NEW.kind = 'clip') EXECUTE FUNCTION nchat.clip_quota_rules();
CREATE INDEX nchat_stream_recordings_clip_creator_idx ON nchat_stream_recordings (created_by, created_at)
  WHERE kind = 'clip';

-- ---------------------------------------------------------------------------------------------
-- Questions: a rate per user and stream, like chat. Named to fire after 0009's
-- nchat_stream_questions_rules (content, Q&A enabled, bans are answered first).
-- The transaction-local `nchat.questions_max` / `nchat.questions_window_s` override the table, as
-- 0009's chat figures do (server code only).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION nchat.question_rate_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  at timestamptz;
  max_n numeric;
  window_s numeric;
  n bigint;
  oldest timestamptz;
BEGIN
  IF NOT nchat.rules_apply(NEW.user_id, NEW.stream_id) THEN
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('question:' || NEW.user_id || ':' || NEW.stream_id, 0));
  at := nchat.rule_clock();
  max_n := greatest(1, nchat.rule_setting('nchat.questions_max', nchat.limit_value('questions_max', 5)));
  window_s := greatest(1, nchat.rule_setting('nchat.questions_window_s', nchat.limit_value('questions_window_s', 60)));
  SELECT count(*), min(q.created_at) INTO n, oldest FROM nchat_stream_questions q
   WHERE q.user_id = NEW.user_id AND q.stream_id = NEW.stream_id
     AND q.created_at > at - window_s * interval '1 second' AND q.created_at <= at;
  PERFORM nchat.check_rate('questions', oldest, n, max_n, window_s, at);
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_questions_rules_rate BEFORE INSERT ON nchat_stream_questions
  FOR EACH ROW EXECUTE FUNCTION nchat.question_rate_rules();
CREATE INDEX nchat_stream_questions_user_stream_idx ON nchat_stream_questions (user_id, stream_id, created_at);
