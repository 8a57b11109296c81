-- Streaming operations: counters kept by triggers (so every write path, the domain operations and
-- the generic table API alike, keeps them right), viewer sessions through functions (anonymous
-- viewers hold no row rights of their own), and the scheduler's record of reminders sent.

-- Domain operations stamp created_at from an injectable clock (rate limits and slow mode are
-- tested with a controlled one), so the request roles may supply it.
GRANT INSERT (created_at) ON nchat_stream_chat_messages TO nchat_user, nchat_moderator;
GRANT INSERT (created_at) ON nchat_stream_reactions TO nchat_user, nchat_moderator;
GRANT INSERT (created_at) ON nchat_stream_questions TO nchat_user, nchat_moderator;

-- Rate limits count a user's recent writes.
CREATE INDEX nchat_stream_reactions_user_idx ON nchat_stream_reactions (user_id, created_at);

-- ---------------------------------------------------------------------------------------------
-- Counters. SECURITY DEFINER: viewers may not update nchat_streams, yet their writes move its
-- counters. A row lock on the stream serialises concurrent increments, so totals are exact.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION nchat.viewer_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE nchat_streams
       SET total_views = total_views + 1,
           current_viewers = current_viewers + CASE WHEN NEW.left_at IS NULL THEN 1 ELSE 0 END,
           peak_viewers = greatest(peak_viewers,
                                   current_viewers + CASE WHEN NEW.left_at IS NULL THEN 1 ELSE 0 END)
     WHERE id = NEW.stream_id;
  ELSIF OLD.left_at IS NULL AND NEW.left_at IS NOT NULL THEN
    UPDATE nchat_streams SET current_viewers = greatest(0, current_viewers - 1) WHERE id = NEW.stream_id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_viewers_counters AFTER INSERT OR UPDATE OF left_at ON nchat_stream_viewers
  FOR EACH ROW EXECUTE FUNCTION nchat.viewer_counters();

CREATE FUNCTION nchat.chat_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE nchat_streams SET total_chat_messages = total_chat_messages + 1 WHERE id = NEW.stream_id;
  UPDATE nchat_stream_viewers SET sent_chat_messages = sent_chat_messages + 1
   WHERE stream_id = NEW.stream_id AND user_id = NEW.user_id AND left_at IS NULL;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_counters AFTER INSERT ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_counters();

CREATE FUNCTION nchat.reaction_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE nchat_streams SET total_reactions = total_reactions + 1 WHERE id = NEW.stream_id;
  IF NEW.user_id IS NOT NULL THEN
    UPDATE nchat_stream_viewers SET sent_reactions = sent_reactions + 1
     WHERE stream_id = NEW.stream_id AND user_id = NEW.user_id AND left_at IS NULL;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_reactions_counters AFTER INSERT ON nchat_stream_reactions
  FOR EACH ROW EXECUTE FUNCTION nchat.reaction_counters();

CREATE FUNCTION nchat.question_vote_counters() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE nchat_stream_questions SET upvotes = upvotes + 1 WHERE id = NEW.question_id;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_question_votes_counters AFTER INSERT ON nchat_stream_question_votes
  FOR EACH ROW EXECUTE FUNCTION nchat.question_vote_counters();

-- ---------------------------------------------------------------------------------------------
-- Viewer sessions. The session token (viewer_session_id, 128 random bits) is the capability
-- for heartbeats and leaving, so anonymous viewers can keep their own session alive.
-- ---------------------------------------------------------------------------------------------

-- Joins a readable, live stream; no row when the stream is not readable or not live (the caller
-- reports which, having looked under its own role first).
CREATE FUNCTION nchat.viewer_join(p_stream uuid, p_token text, p_quality text, p_user_agent text,
                                  p_ip inet, p_at timestamptz)
RETURNS SETOF nchat_stream_viewers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT nchat.can_read_stream(p_stream) THEN
    RETURN;
  END IF;
  -- Serialises with the stream ending, so no session opens on an ended stream.
  PERFORM 1 FROM nchat_streams WHERE id = p_stream AND status = 'live' FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO nchat_stream_viewers (stream_id, user_id, viewer_session_id, quality, user_agent, ip_address,
                                      joined_at, last_seen_at)
    VALUES (p_stream, nchat.user_id(), p_token, p_quality, p_user_agent, p_ip, p_at, p_at)
    RETURNING *;
END $$;

-- A heartbeat (p_leave false) or leaving (true) on an open session owned by the caller (or an
-- anonymous one: the token alone). Buffering is the time since the previous heartbeat.
CREATE FUNCTION nchat.viewer_touch(p_token text, p_quality text, p_buffering_ms bigint, p_at timestamptz,
                                   p_leave boolean)
RETURNS SETOF nchat_stream_viewers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY
    UPDATE nchat_stream_viewers v
       SET last_seen_at = greatest(v.last_seen_at, p_at),
           quality = coalesce(p_quality, v.quality),
           quality_switches = v.quality_switches
             + CASE WHEN p_quality IS NOT NULL AND v.quality IS DISTINCT FROM p_quality THEN 1 ELSE 0 END,
           buffering_ms = v.buffering_ms + greatest(0, coalesce(p_buffering_ms, 0)),
           watch_duration_seconds = greatest(0, extract(epoch FROM greatest(v.last_seen_at, p_at) - v.joined_at))::int,
           left_at = CASE WHEN p_leave THEN greatest(v.last_seen_at, p_at) END
     WHERE v.viewer_session_id = p_token AND v.left_at IS NULL
       AND (v.user_id IS NULL OR v.user_id = nchat.user_id() OR nchat.is_admin())
    RETURNING v.*;
END $$;

GRANT EXECUTE ON FUNCTION nchat.viewer_join(uuid, text, text, text, inet, timestamptz),
                          nchat.viewer_touch(text, text, bigint, timestamptz, boolean)
  TO nchat_anonymous, nchat_user, nchat_moderator, nchat_admin;

-- ---------------------------------------------------------------------------------------------
-- Scheduler state: one row per reminder sent, so a restart or a second process never sends twice.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE nchat_stream_reminders_sent (
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  lead_minutes integer NOT NULL CHECK (lead_minutes >= 0),
  recipients integer NOT NULL DEFAULT 0,
  sent_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, lead_minutes)
);
ALTER TABLE nchat_stream_reminders_sent ENABLE ROW LEVEL SECURITY;
ALTER TABLE nchat_stream_reminders_sent FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON nchat_stream_reminders_sent TO nchat_admin;
CREATE POLICY admin_all ON nchat_stream_reminders_sent TO nchat_admin USING (true) WITH CHECK (true);
