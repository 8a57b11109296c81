-- Highlights and chapters (issue 18, deliverable 3). Three tables under the permission model:
--   nchat_stream_engagement  per-bucket activity of a stream (chat, reactions, joins, Q&A), server-owned,
--                            readable with the stream; filled by nchat.engagement_refresh (the server's).
--   nchat_stream_highlights  peaks suggested as clips of the recording; the stream's managers (broadcaster,
--                            channel owner/admin/moderator, staff) keep or discard them; everyone else who
--                            may read the stream sees only the kept ones. Rows are the server's to insert.
--   nchat_stream_chapters    chapter marks of a recording (automatic at peaks, or the managers' own),
--                            readable with the stream, written by its managers.

CREATE TABLE nchat_stream_engagement (
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  bucket integer NOT NULL CHECK (bucket >= 0),
  bucket_seconds integer NOT NULL CHECK (bucket_seconds > 0),
  starts_at timestamptz NOT NULL,
  chat_messages integer NOT NULL DEFAULT 0,
  reactions integer NOT NULL DEFAULT 0,
  viewer_joins integer NOT NULL DEFAULT 0,
  questions integer NOT NULL DEFAULT 0,
  upvotes integer NOT NULL DEFAULT 0,
  PRIMARY KEY (stream_id, bucket)
);

CREATE TABLE nchat_stream_highlights (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  clip_id uuid REFERENCES nchat_stream_recordings (id) ON DELETE SET NULL,
  peak_seconds double precision NOT NULL CHECK (peak_seconds >= 0),
  start_seconds double precision NOT NULL CHECK (start_seconds >= 0),
  end_seconds double precision NOT NULL,
  score double precision NOT NULL DEFAULT 0,
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  terms text[] NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'suggested' CHECK (status IN ('suggested', 'kept', 'discarded')),
  decided_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  decided_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (end_seconds > start_seconds)
);
CREATE INDEX nchat_stream_highlights_stream_idx ON nchat_stream_highlights (stream_id, peak_seconds);

CREATE TABLE nchat_stream_chapters (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  start_seconds double precision NOT NULL CHECK (start_seconds >= 0 AND start_seconds < 86400 * 7),
  title text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
  source text NOT NULL DEFAULT 'manual' CHECK (source IN ('auto', 'manual')),
  highlight_id uuid REFERENCES nchat_stream_highlights (id) ON DELETE SET NULL,
  created_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_chapters_stream_idx ON nchat_stream_chapters (stream_id, start_seconds);

CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_highlights
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON nchat_stream_chapters
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['nchat_stream_engagement', 'nchat_stream_highlights', 'nchat_stream_chapters'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO nchat_admin', t);
    EXECUTE format('CREATE POLICY admin_all ON %I TO nchat_admin USING (true) WITH CHECK (true)', t);
  END LOOP;
END $$;

-- Engagement: read with the stream; no request role writes it.
GRANT SELECT (stream_id, bucket, bucket_seconds, starts_at, chat_messages, reactions, viewer_joins, questions, upvotes)
  ON nchat_stream_engagement TO nchat_anonymous, nchat_user, nchat_moderator;
CREATE POLICY read_with_stream ON nchat_stream_engagement FOR SELECT
  TO nchat_anonymous, nchat_user, nchat_moderator USING (nchat.can_read_stream(stream_id));

-- Highlights: managers read all and decide (status, title); the rest read the kept ones.
GRANT SELECT (id, stream_id, clip_id, peak_seconds, start_seconds, end_seconds, score, title, terms, status,
              decided_by, decided_at, created_at, updated_at)
  ON nchat_stream_highlights TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT UPDATE (status, title) ON nchat_stream_highlights TO nchat_user, nchat_moderator;
CREATE POLICY read_kept_or_manager ON nchat_stream_highlights FOR SELECT
  TO nchat_anonymous, nchat_user, nchat_moderator
  USING ((status = 'kept' AND nchat.can_read_stream(stream_id)) OR nchat.can_manage_stream(stream_id));
CREATE POLICY update_manager ON nchat_stream_highlights FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id)) WITH CHECK (nchat.can_manage_stream(stream_id));

-- Who decided and when: the caller, always (a preset no request can set).
CREATE FUNCTION nchat.highlight_decided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status THEN
    NEW.decided_by := nchat.user_id();
    NEW.decided_at := now();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER a0_decided BEFORE UPDATE ON nchat_stream_highlights
  FOR EACH ROW EXECUTE FUNCTION nchat.highlight_decided();

-- Chapters: read with the stream; managers add, edit (title, start) and remove them.
GRANT SELECT (id, stream_id, start_seconds, title, source, highlight_id, created_by, created_at, updated_at)
  ON nchat_stream_chapters TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (stream_id, start_seconds, title, created_by) ON nchat_stream_chapters TO nchat_user, nchat_moderator;
GRANT UPDATE (start_seconds, title) ON nchat_stream_chapters TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_stream_chapters TO nchat_user, nchat_moderator;
CREATE POLICY read_with_stream ON nchat_stream_chapters FOR SELECT
  TO nchat_anonymous, nchat_user, nchat_moderator USING (nchat.can_read_stream(stream_id));
CREATE POLICY insert_manager ON nchat_stream_chapters FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (nchat.can_manage_stream(stream_id));
CREATE POLICY update_manager ON nchat_stream_chapters FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id)) WITH CHECK (nchat.can_manage_stream(stream_id));
CREATE POLICY delete_manager ON nchat_stream_chapters FOR DELETE TO nchat_user, nchat_moderator
  USING (nchat.can_manage_stream(stream_id));

CREATE FUNCTION nchat.chapter_preset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nchat.acting_as_request_role() THEN
    NEW.created_by := nchat.user_id();
  END IF;
  NEW.title := btrim(NEW.title);
  RETURN NEW;
END $$;
CREATE TRIGGER a0_preset_caller BEFORE INSERT ON nchat_stream_chapters
  FOR EACH ROW EXECUTE FUNCTION nchat.chapter_preset();

-- The server counts a stream's activity per bucket, from the stream's start to its end (or now).
-- Only the server (admin) may run it; request roles read the result.
CREATE FUNCTION nchat.engagement_refresh(stream uuid, seconds integer DEFAULT 5) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
  n integer;
BEGIN
  IF NOT nchat.is_admin() THEN
    PERFORM nchat.refuse(403, 'permission-error', 'engagement is counted by the server');
  END IF;
  SELECT started_at, coalesce(ended_at, now()) AS until INTO s FROM nchat_streams WHERE id = stream;
  IF NOT FOUND OR s.started_at IS NULL THEN
    RETURN 0;
  END IF;
  DELETE FROM nchat_stream_engagement WHERE stream_id = stream;
  WITH ev(at, chat, reaction, joined, question, upvote) AS (
    SELECT created_at, 1, 0, 0, 0, 0 FROM nchat_stream_chat_messages WHERE stream_id = stream
    UNION ALL SELECT created_at, 0, 1, 0, 0, 0 FROM nchat_stream_reactions WHERE stream_id = stream
    UNION ALL SELECT joined_at, 0, 0, 1, 0, 0 FROM nchat_stream_viewers WHERE stream_id = stream
    UNION ALL SELECT created_at, 0, 0, 0, 1, 0 FROM nchat_stream_questions WHERE stream_id = stream
    UNION ALL SELECT v.created_at, 0, 0, 0, 0, 1 FROM nchat_stream_question_votes v
      JOIN nchat_stream_questions q ON q.id = v.question_id WHERE q.stream_id = stream
  ), b AS (
    SELECT floor(extract(epoch FROM ev.at - s.started_at) / seconds)::integer AS bucket, ev.*
    FROM ev WHERE ev.at >= s.started_at AND ev.at <= s.until
  )
  INSERT INTO nchat_stream_engagement
    (stream_id, bucket, bucket_seconds, starts_at, chat_messages, reactions, viewer_joins, questions, upvotes)
  SELECT stream, b.bucket, seconds, s.started_at + make_interval(secs => b.bucket * seconds),
         sum(b.chat), sum(b.reaction), sum(b.joined), sum(b.question), sum(b.upvote)
  FROM b GROUP BY b.bucket;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- New functions are executable by PUBLIC (Postgres's default); the server-only ones are revoked by name
-- (0018 and db/permissions.py SERVER_ONLY_FUNCTIONS): a blanket grant here would re-open them.
