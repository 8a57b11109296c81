-- Live polls and chat moderation tools (issue 18), enforced in Postgres so the domain operations, REST,
-- the websocket path and the Hasura table API obey the same rules.
--
-- Polls: the stream's managers create a poll (question, 2..10 options, single or multiple choice,
-- optional duration), open and close it through nchat.poll_set_status; signed-in viewers vote once per
-- poll (primary key (poll_id, user_id)) and may change their choices while it is open; the counts
-- (vote_counts, voters) are written only by the definer trigger on the votes. Who voted for what is
-- readable by the voter and the stream's broadcaster (and staff) only.
--
-- Moderation: per-channel blocked terms (words, matched case-, accent- and obfuscation-insensitively,
-- and regular expressions; action 'block' refuses, 'hold' keeps the message for review), a link filter
-- with allowed domains, emote-only mode and a minimum account age, judged by a BEFORE INSERT/UPDATE
-- trigger on chat messages after 0009's rules. A held message (status 'held') is readable by its author
-- and the stream's managers only, until a manager approves (status 'visible', created_at unchanged) or
-- denies it (nchat.chat_review). Moderator actions are logged by triggers into nchat_moderation_log,
-- readable by the channel's moderators.

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

-- The channel's owner/admin/moderator, or platform staff.
CREATE FUNCTION nchat.can_moderate_channel(channel uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT nchat.is_staff() OR EXISTS (
    SELECT 1 FROM public.nchat_channel_members m
    WHERE m.channel_id = channel AND m.user_id = nchat.user_id() AND m.role IN ('owner', 'admin', 'moderator'))
$$;

-- Text as the term filter compares it: lower case, accents removed (NFKD, combining marks dropped),
-- the common leetspeak digits and signs read as letters (0→o 1→i 3→e 4→a 5→s @→a $→s).
CREATE FUNCTION nchat.fold_text(value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT translate(regexp_replace(normalize(lower(coalesce(value, '')), NFKD), '[\u0300-\u036f]', '', 'g'),
                   '013457@$', 'oieastas')
$$;

-- A word term as a regular expression over folded text: its letters (repeats collapsed), each allowed to
-- repeat and to be followed by separators (f.o.o, f o o, fooo), between word boundaries.
CREATE FUNCTION nchat.term_regex(term text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT '(^|[^[:alnum:]])' || string_agg('(' || c || '[^[:alnum:]]*)+', '' ORDER BY n) || '($|[^[:alnum:]])'
    FROM regexp_split_to_table(
           regexp_replace(regexp_replace(nchat.fold_text(term), '[^[:alnum:]]', '', 'g'), '(.)\1+', '\1', 'g'), '')
         WITH ORDINALITY AS t(c, n)
   WHERE c <> ''
$$;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

CREATE TABLE nchat_stream_polls (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  stream_id uuid NOT NULL REFERENCES nchat_streams (id) ON DELETE CASCADE,
  created_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  question text NOT NULL CHECK (length(question) BETWEEN 1 AND 200),
  options text[] NOT NULL CHECK (cardinality(options) BETWEEN 2 AND 10),
  allow_multiple boolean NOT NULL DEFAULT false,
  duration_seconds integer CHECK (duration_seconds BETWEEN 5 AND 86400),
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'closed')),
  opened_at timestamptz,
  closes_at timestamptz,
  closed_at timestamptz,
  vote_counts integer[] NOT NULL DEFAULT '{}',
  voters integer NOT NULL DEFAULT 0,
  -- Bumped with every change of counts or status under the poll's row lock: results published by
  -- concurrent votes can be put in order (the pollResults subscription drops a stale one).
  revision integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nchat_stream_polls_stream_idx ON nchat_stream_polls (stream_id, created_at);

CREATE TABLE nchat_stream_poll_votes (
  poll_id uuid NOT NULL REFERENCES nchat_stream_polls (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES nchat_users (id) ON DELETE CASCADE,
  choices smallint[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (poll_id, user_id)
);

CREATE TABLE nchat_channel_chat_settings (
  channel_id uuid PRIMARY KEY REFERENCES nchat_channels (id) ON DELETE CASCADE,
  link_filter boolean NOT NULL DEFAULT false,
  allowed_domains text[] NOT NULL DEFAULT '{}',
  emote_only boolean NOT NULL DEFAULT false,
  min_account_age_seconds integer NOT NULL DEFAULT 0 CHECK (min_account_age_seconds BETWEEN 0 AND 31536000),
  updated_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nchat_channel_blocked_terms (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id uuid NOT NULL REFERENCES nchat_channels (id) ON DELETE CASCADE,
  term text NOT NULL CHECK (length(term) BETWEEN 1 AND 200),
  is_pattern boolean NOT NULL DEFAULT false,
  action text NOT NULL DEFAULT 'block' CHECK (action IN ('block', 'hold')),
  -- What a message is matched against: a word's regular expression (nchat.term_regex), made once here.
  matcher text GENERATED ALWAYS AS (CASE WHEN is_pattern THEN term ELSE nchat.term_regex(term) END) STORED,
  created_by uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (channel_id, term, is_pattern)
);

CREATE TABLE nchat_moderation_log (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id uuid NOT NULL REFERENCES nchat_channels (id) ON DELETE CASCADE,
  stream_id uuid REFERENCES nchat_streams (id) ON DELETE SET NULL,
  actor_id uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  action text NOT NULL,
  target_user_id uuid REFERENCES nchat_users (id) ON DELETE SET NULL,
  target_message_id uuid,
  details jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX nchat_moderation_log_channel_idx ON nchat_moderation_log (channel_id, created_at);

ALTER TABLE nchat_stream_chat_messages ADD COLUMN status text NOT NULL DEFAULT 'visible'
  CHECK (status IN ('visible', 'held', 'denied'));

CREATE TRIGGER nchat_stream_polls_updated_at BEFORE UPDATE ON nchat_stream_polls
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
CREATE TRIGGER nchat_stream_poll_votes_updated_at BEFORE UPDATE ON nchat_stream_poll_votes
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();
CREATE TRIGGER nchat_channel_chat_settings_updated_at BEFORE UPDATE ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Grants and policies (db/permissions.py states the same model)
-- ---------------------------------------------------------------------------------------------

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['nchat_stream_polls', 'nchat_stream_poll_votes', 'nchat_channel_chat_settings',
                           'nchat_channel_blocked_terms', 'nchat_moderation_log'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO nchat_admin', t);
    EXECUTE format('CREATE POLICY admin_all ON %I TO nchat_admin USING (true) WITH CHECK (true)', t);
  END LOOP;
END $$;

GRANT SELECT (status) ON nchat_stream_chat_messages TO nchat_anonymous, nchat_user, nchat_moderator;
-- A held or denied message: its author and the stream's managers only.
-- The stream's visibility stays whatever the policy says now (migration 0014 writes it for speed); the
-- status test is added to it (claims read once per statement; the per-row manager check only for the rare
-- row that is not visible). The policy's previous text is kept in its comment for the down migration.
DO $$
DECLARE
  q text;
BEGIN
  SELECT qual INTO STRICT q FROM pg_policies
   WHERE schemaname = 'public' AND tablename = 'nchat_stream_chat_messages' AND policyname = 'read_visible';
  EXECUTE format('COMMENT ON POLICY read_visible ON nchat_stream_chat_messages IS %L', q);
  EXECUTE format('ALTER POLICY read_visible ON nchat_stream_chat_messages USING ((%s) AND (status = ''visible'' '
                 'OR user_id = (SELECT nchat.user_id()) OR nchat.can_manage_stream(stream_id)))', q);
END $$;

GRANT SELECT (id, stream_id, created_by, question, options, allow_multiple, duration_seconds, status, opened_at,
              closes_at, closed_at, vote_counts, voters, revision, created_at, updated_at)
  ON nchat_stream_polls TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (id, stream_id, created_by, question, options, allow_multiple, duration_seconds)
  ON nchat_stream_polls TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_stream_polls FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING ((SELECT nchat.is_staff()) OR EXISTS (SELECT 1 FROM nchat_streams s WHERE s.id = stream_id));
CREATE POLICY insert_manager ON nchat_stream_polls FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (created_by = nchat.user_id() AND nchat.can_manage_stream(stream_id));

-- The stream's broadcaster of a poll (definer: the policy on votes must not recurse through polls').
CREATE FUNCTION nchat.poll_broadcaster(poll uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT s.broadcaster_id FROM public.nchat_stream_polls p JOIN public.nchat_streams s ON s.id = p.stream_id
   WHERE p.id = poll
$$;

CREATE FUNCTION nchat.poll_stream(poll uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT p.stream_id FROM public.nchat_stream_polls p WHERE p.id = poll
$$;

GRANT SELECT (poll_id, user_id, choices, created_at, updated_at) ON nchat_stream_poll_votes TO nchat_user, nchat_moderator;
GRANT INSERT (poll_id, user_id, choices) ON nchat_stream_poll_votes TO nchat_user, nchat_moderator;
GRANT UPDATE (choices) ON nchat_stream_poll_votes TO nchat_user, nchat_moderator;
CREATE POLICY read_own_or_broadcaster ON nchat_stream_poll_votes FOR SELECT TO nchat_user, nchat_moderator
  USING (user_id = (SELECT nchat.user_id()) OR (SELECT nchat.is_staff())
         OR nchat.poll_broadcaster(poll_id) = (SELECT nchat.user_id()));
CREATE POLICY insert_self ON nchat_stream_poll_votes FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (user_id = nchat.user_id() AND nchat.can_read_stream(nchat.poll_stream(poll_id)));
CREATE POLICY update_self ON nchat_stream_poll_votes FOR UPDATE TO nchat_user, nchat_moderator
  USING (user_id = nchat.user_id()) WITH CHECK (user_id = nchat.user_id());

GRANT SELECT (channel_id, link_filter, allowed_domains, emote_only, min_account_age_seconds, updated_by, updated_at)
  ON nchat_channel_chat_settings TO nchat_anonymous, nchat_user, nchat_moderator;
GRANT INSERT (channel_id, link_filter, allowed_domains, emote_only, min_account_age_seconds)
  ON nchat_channel_chat_settings TO nchat_user, nchat_moderator;
GRANT UPDATE (link_filter, allowed_domains, emote_only, min_account_age_seconds)
  ON nchat_channel_chat_settings TO nchat_user, nchat_moderator;
CREATE POLICY read_visible ON nchat_channel_chat_settings FOR SELECT TO nchat_anonymous, nchat_user, nchat_moderator
  USING (nchat.can_read_channel(channel_id));
CREATE POLICY insert_moderator ON nchat_channel_chat_settings FOR INSERT TO nchat_user, nchat_moderator
  WITH CHECK (nchat.can_moderate_channel(channel_id));
CREATE POLICY update_moderator ON nchat_channel_chat_settings FOR UPDATE TO nchat_user, nchat_moderator
  USING (nchat.can_moderate_channel(channel_id)) WITH CHECK (nchat.can_moderate_channel(channel_id));

GRANT SELECT (id, channel_id, term, is_pattern, action, matcher, created_by, created_at)
  ON nchat_channel_blocked_terms TO nchat_user, nchat_moderator;
GRANT INSERT (channel_id, term, is_pattern, action) ON nchat_channel_blocked_terms TO nchat_user, nchat_moderator;
GRANT DELETE ON nchat_channel_blocked_terms TO nchat_user, nchat_moderator;
CREATE POLICY moderators ON nchat_channel_blocked_terms FOR ALL TO nchat_user, nchat_moderator
  USING (nchat.can_moderate_channel(channel_id)) WITH CHECK (nchat.can_moderate_channel(channel_id));

GRANT SELECT (id, channel_id, stream_id, actor_id, action, target_user_id, target_message_id, details, created_at)
  ON nchat_moderation_log TO nchat_user, nchat_moderator;
CREATE POLICY read_moderators ON nchat_moderation_log FOR SELECT TO nchat_user, nchat_moderator
  USING (nchat.can_moderate_channel(channel_id));

-- ---------------------------------------------------------------------------------------------
-- Polls
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION nchat.poll_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  s record;
  opt text;
  cleaned text[] := '{}';
BEGIN
  NEW.created_by := coalesce(NEW.created_by, nchat.user_id());
  NEW.question := nchat.clean_text(NEW.question, 'question', 200);
  IF cardinality(NEW.options) NOT BETWEEN 2 AND 10 THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('a poll has 2 to 10 options, not %s', coalesce(cardinality(NEW.options), 0)));
  END IF;
  FOREACH opt IN ARRAY NEW.options LOOP
    cleaned := cleaned || nchat.clean_text(opt, 'option', 100);
  END LOOP;
  IF (SELECT count(DISTINCT lower(o)) FROM unnest(cleaned) AS o) <> cardinality(cleaned) THEN
    PERFORM nchat.refuse(400, 'validation-failed', 'the options of a poll must differ');
  END IF;
  IF NEW.duration_seconds IS NOT NULL AND NEW.duration_seconds NOT BETWEEN 5 AND 86400 THEN
    PERFORM nchat.refuse(400, 'validation-failed',
                         format('durationSeconds %s is outside 5..86400', NEW.duration_seconds));
  END IF;
  NEW.options := cleaned;
  IF nchat.is_admin() THEN
    RETURN NEW;
  END IF;
  -- Counts and status are the server's, whatever the writer sent.
  NEW.status := 'draft';
  NEW.opened_at := NULL;
  NEW.closes_at := NULL;
  NEW.closed_at := NULL;
  NEW.vote_counts := array_fill(0, ARRAY[cardinality(cleaned)]);
  NEW.voters := 0;
  NEW.revision := 0;
  NEW.created_at := nchat.rule_clock();
  IF nchat.can_manage_stream(NEW.stream_id) THEN
    SELECT status INTO s FROM nchat_streams WHERE id = NEW.stream_id;
    IF s.status <> 'live' THEN
      PERFORM nchat.refuse(409, 'stream-not-live',
                           format('polls run on a live stream; this one is ''%s''', s.status));
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_polls_rules BEFORE INSERT ON nchat_stream_polls
  FOR EACH ROW EXECUTE FUNCTION nchat.poll_rules();

-- Open (from draft) or close (from draft or open) a poll: the stream's managers. Returns the poll.
CREATE FUNCTION nchat.poll_set_status(p_poll uuid, p_status text) RETURNS SETOF nchat_stream_polls
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  p record;
  at timestamptz := nchat.rule_clock();
BEGIN
  SELECT id, stream_id, status, duration_seconds INTO p FROM nchat_stream_polls WHERE id = p_poll FOR UPDATE;
  IF NOT FOUND OR NOT nchat.can_read_stream(p.stream_id) THEN
    PERFORM nchat.refuse(404, 'poll-not-found', format('poll ''%s'' not found', p_poll));
  END IF;
  IF NOT nchat.can_manage_stream(p.stream_id) THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the broadcaster or a moderator of the channel may run polls');
  END IF;
  IF p_status = 'open' THEN
    IF p.status <> 'draft' THEN
      PERFORM nchat.refuse(409, 'poll-not-draft', format('the poll is ''%s''; only a draft opens', p.status));
    END IF;
    RETURN QUERY UPDATE nchat_stream_polls SET status = 'open', opened_at = at, revision = revision + 1,
                        closes_at = at + duration_seconds * interval '1 second'
                  WHERE id = p_poll RETURNING *;
  ELSIF p_status = 'closed' THEN
    RETURN QUERY UPDATE nchat_stream_polls SET status = 'closed', revision = revision + 1,
                        closed_at = coalesce(closed_at, least(at, closes_at))
                  WHERE id = p_poll RETURNING *;
  ELSE
    PERFORM nchat.refuse(400, 'validation-failed', format('status ''%s'' is not open or closed', p_status));
  END IF;
END $$;

-- Closes the stream's open polls whose duration has run out (called on read and by the domain); returns them.
CREATE FUNCTION nchat.poll_close_due(p_stream uuid) RETURNS SETOF nchat_stream_polls
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE nchat_stream_polls SET status = 'closed', closed_at = closes_at, revision = revision + 1
   WHERE stream_id = p_stream AND status = 'open' AND closes_at <= nchat.rule_clock() RETURNING *
$$;

CREATE FUNCTION nchat.poll_vote_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  p record;
  s record;
  n integer;
BEGIN
  IF TG_OP = 'INSERT' AND NOT nchat.is_admin() THEN
    NEW.user_id := coalesce(NEW.user_id, nchat.user_id());  -- the preset: the caller
  END IF;
  SELECT id, stream_id, status, closes_at, allow_multiple, cardinality(options) AS options INTO p
    FROM nchat_stream_polls WHERE id = NEW.poll_id;
  IF NOT FOUND THEN
    RETURN NEW;  -- the foreign key answers
  END IF;
  IF NOT nchat.is_admin() AND NOT (NEW.user_id IS NOT DISTINCT FROM nchat.user_id()
                                   AND nchat.can_read_stream(p.stream_id)) THEN
    RETURN NEW;  -- left to the policies (permission-error), telling nothing about the poll
  END IF;
  IF p.status <> 'open' OR (p.closes_at IS NOT NULL AND p.closes_at <= nchat.rule_clock()) THEN
    PERFORM nchat.refuse(409, 'poll-closed', 'this poll is not open for votes');
  END IF;
  SELECT id, channel_id INTO s FROM nchat_streams WHERE id = p.stream_id;
  IF NOT nchat.is_admin() THEN
    PERFORM nchat.check_not_banned(s.id, s.channel_id, NEW.user_id, nchat.rule_clock());
  END IF;
  SELECT count(*) INTO n FROM unnest(NEW.choices) AS c;
  IF n = 0 OR (NOT p.allow_multiple AND n <> 1) THEN
    PERFORM nchat.refuse(400, 'invalid-choice',
                         CASE WHEN p.allow_multiple THEN 'choose at least one option' ELSE 'choose exactly one option' END);
  END IF;
  IF (SELECT count(DISTINCT c) FROM unnest(NEW.choices) AS c) <> n
     OR EXISTS (SELECT 1 FROM unnest(NEW.choices) AS c WHERE c IS NULL OR c < 0 OR c >= p.options) THEN
    PERFORM nchat.refuse(400, 'invalid-choice',
                         format('choices %s are not distinct option indexes 0..%s', NEW.choices, p.options - 1));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_poll_votes_rules BEFORE INSERT OR UPDATE ON nchat_stream_poll_votes
  FOR EACH ROW EXECUTE FUNCTION nchat.poll_vote_rules();

-- The counts follow the votes (server-owned: no request role may write them).
CREATE FUNCTION nchat.poll_vote_counts() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  c smallint;
  counts integer[];
  poll uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.poll_id ELSE NEW.poll_id END;
BEGIN
  SELECT vote_counts INTO counts FROM nchat_stream_polls WHERE id = poll FOR UPDATE;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    FOREACH c IN ARRAY OLD.choices LOOP
      counts[c + 1] := counts[c + 1] - 1;
    END LOOP;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    FOREACH c IN ARRAY NEW.choices LOOP
      counts[c + 1] := counts[c + 1] + 1;
    END LOOP;
  END IF;
  UPDATE nchat_stream_polls
     SET vote_counts = counts, revision = revision + 1,
         voters = voters + CASE TG_OP WHEN 'INSERT' THEN 1 WHEN 'DELETE' THEN -1 ELSE 0 END
   WHERE id = poll;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_poll_votes_counts AFTER INSERT OR UPDATE OR DELETE ON nchat_stream_poll_votes
  FOR EACH ROW EXECUTE FUNCTION nchat.poll_vote_counts();

-- ---------------------------------------------------------------------------------------------
-- Chat moderation rules
-- ---------------------------------------------------------------------------------------------

-- The verdict on a message's text in a channel: 'visible' or 'held', or a refusal with its code.
CREATE FUNCTION nchat.chat_verdict(p_channel uuid, p_user uuid, p_content text, p_at timestamptz) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  cfg record;
  joined timestamptz;
  wait integer;
  host text;
  folded text := nchat.fold_text(p_content);
  t record;
  block_words text;
  hold_words text;
  verdict text := 'visible';
BEGIN
  SELECT * INTO cfg FROM nchat_channel_chat_settings WHERE channel_id = p_channel;
  IF FOUND THEN
    IF cfg.min_account_age_seconds > 0 THEN
      SELECT created_at INTO joined FROM nchat_users WHERE id = p_user;
      wait := ceil(extract(epoch FROM joined + cfg.min_account_age_seconds * interval '1 second' - p_at))::integer;
      IF wait > 0 THEN
        PERFORM nchat.refuse(403, 'account-too-new',
                             format('accounts younger than %s s cannot chat here; wait %s s',
                                    cfg.min_account_age_seconds, wait),
                             jsonb_build_object('retryAfterSeconds', wait));
      END IF;
    END IF;
    IF cfg.emote_only AND p_content !~ ('^[[:space:]\u200d\ufe0f\u20e3\u2600-\u27bf\u2b00-\u2bff'
                                         '\U0001f000-\U0001faff]+$') THEN
      PERFORM nchat.refuse(403, 'emote-only', 'chat is in emote-only mode: send emoji only');
    END IF;
    IF cfg.link_filter THEN
      FOR host IN
        SELECT lower(m[2]) FROM regexp_matches(p_content,
          '(^|[^[:alnum:]@.-])(?:https?://)?((?:[[:alnum:]-]+\.)+[[:alpha:]]{2,})(?![[:alnum:]-])', 'gi') AS m
      LOOP
        IF NOT EXISTS (SELECT 1 FROM unnest(cfg.allowed_domains) AS d
                        WHERE host = lower(d) OR host LIKE '%.' || lower(d)) THEN
          PERFORM nchat.refuse(403, 'link-not-allowed', format('links to %s are not allowed in this chat', host),
                               jsonb_build_object('domain', host));
        END IF;
      END LOOP;
    END IF;
  END IF;
  -- The words as one alternation per action: one regular expression each, compiled once and then found
  -- in Postgres's cache of compiled expressions while the list is unchanged. Patterns one by one (a
  -- pattern's back-references would not survive being joined).
  SELECT string_agg(matcher, '|' ORDER BY id) FILTER (WHERE NOT is_pattern AND action = 'block'),
         string_agg(matcher, '|' ORDER BY id) FILTER (WHERE NOT is_pattern AND action = 'hold')
    INTO block_words, hold_words FROM nchat_channel_blocked_terms WHERE channel_id = p_channel;
  IF block_words IS NOT NULL AND folded ~ block_words THEN
    PERFORM nchat.refuse(403, 'blocked-term', 'your message contains a term this channel does not allow');
  END IF;
  FOR t IN SELECT term, action FROM nchat_channel_blocked_terms WHERE channel_id = p_channel AND is_pattern
            ORDER BY action = 'block' DESC, id LOOP
    IF p_content ~* t.term OR folded ~* t.term THEN
      IF t.action = 'block' THEN
        PERFORM nchat.refuse(403, 'blocked-term', 'your message contains a term this channel does not allow');
      END IF;
      verdict := 'held';
    END IF;
  END LOOP;
  IF hold_words IS NOT NULL AND folded ~ hold_words THEN
    verdict := 'held';
  END IF;
  RETURN verdict;
END $$;

-- After 0009's rules (the trigger name sorts after theirs): the channel's moderation rules, for everyone
-- but the stream's managers (and the server).
CREATE FUNCTION nchat.chat_moderation_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  verdict text;
BEGIN
  IF nchat.is_admin() THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' THEN
    NEW.status := 'visible';
  END IF;
  IF NOT nchat.rules_apply(NEW.user_id, NEW.stream_id) OR nchat.can_manage_stream(NEW.stream_id)
     OR (TG_OP = 'UPDATE' AND NEW.content IS NOT DISTINCT FROM OLD.content) OR NEW.is_deleted THEN
    RETURN NEW;
  END IF;
  verdict := nchat.chat_verdict(nchat.stream_channel(NEW.stream_id), NEW.user_id, NEW.content, nchat.rule_clock());
  IF verdict = 'held' THEN
    NEW.status := 'held';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_rules_moderation BEFORE INSERT OR UPDATE OF content
  ON nchat_stream_chat_messages FOR EACH ROW EXECUTE FUNCTION nchat.chat_moderation_rules();

-- Approve (held → visible, in its original place: created_at unchanged) or deny (held → denied).
CREATE FUNCTION nchat.chat_review(p_message uuid, p_approve boolean) RETURNS SETOF nchat_stream_chat_messages
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  m record;
BEGIN
  SELECT id, stream_id, status INTO m FROM nchat_stream_chat_messages WHERE id = p_message FOR UPDATE;
  IF NOT FOUND OR NOT nchat.can_read_stream(m.stream_id) THEN
    RETURN;
  END IF;
  IF NOT nchat.can_manage_stream(m.stream_id) THEN
    PERFORM nchat.refuse(403, 'permission-error', 'only the broadcaster or a moderator may review held messages');
  END IF;
  IF m.status <> 'held' THEN
    PERFORM nchat.refuse(409, 'message-not-held', format('the message is ''%s'', not held', m.status));
  END IF;
  RETURN QUERY UPDATE nchat_stream_chat_messages SET status = CASE WHEN p_approve THEN 'visible' ELSE 'denied' END
                WHERE id = p_message RETURNING *;
END $$;

CREATE FUNCTION nchat.term_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.created_by := nchat.user_id();
  NEW.term := nchat.clean_text(NEW.term, 'term', 200);
  IF NEW.is_pattern THEN
    BEGIN
      PERFORM '' ~ NEW.term;
    EXCEPTION WHEN invalid_regular_expression THEN
      PERFORM nchat.refuse(400, 'invalid-pattern', format('pattern ''%s'' is not a valid regular expression: %s',
                                                          NEW.term, SQLERRM));
    END;
  ELSIF nchat.term_regex(NEW.term) IS NULL THEN
    PERFORM nchat.refuse(400, 'invalid-pattern', format('term ''%s'' has no letters or digits', NEW.term));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_channel_blocked_terms_rules BEFORE INSERT ON nchat_channel_blocked_terms
  FOR EACH ROW EXECUTE FUNCTION nchat.term_rules();

CREATE FUNCTION nchat.chat_settings_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.updated_by := nchat.user_id();
  NEW.allowed_domains := ARRAY(SELECT DISTINCT lower(trim(both '. ' FROM d)) FROM unnest(NEW.allowed_domains) AS d
                                WHERE trim(both '. ' FROM d) <> '');
  RETURN NEW;
END $$;
CREATE TRIGGER nchat_channel_chat_settings_rules BEFORE INSERT OR UPDATE ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.chat_settings_rules();

-- ---------------------------------------------------------------------------------------------
-- The moderation log: written by triggers on every path
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION nchat.mod_log(p_channel uuid, p_stream uuid, p_action text, p_user uuid, p_message uuid,
                              p_details jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO nchat_moderation_log (channel_id, stream_id, actor_id, action, target_user_id, target_message_id, details)
  VALUES (p_channel, p_stream, nchat.user_id(), p_action, p_user, p_message, coalesce(p_details, '{}'))
$$;

CREATE FUNCTION nchat.log_message_moderation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  ch uuid := nchat.stream_channel(NEW.stream_id);
BEGIN
  IF NEW.is_deleted AND NOT OLD.is_deleted AND NEW.deleted_by IS DISTINCT FROM NEW.user_id THEN
    PERFORM nchat.mod_log(ch, NEW.stream_id, 'delete', NEW.user_id, NEW.id, '{}');
  END IF;
  IF NEW.is_pinned AND NOT OLD.is_pinned THEN
    PERFORM nchat.mod_log(ch, NEW.stream_id, 'pin', NEW.user_id, NEW.id, '{}');
  ELSIF OLD.is_pinned AND NOT NEW.is_pinned AND NOT NEW.is_deleted THEN
    PERFORM nchat.mod_log(ch, NEW.stream_id, 'unpin', NEW.user_id, NEW.id, '{}');
  END IF;
  IF OLD.status = 'held' AND NEW.status IN ('visible', 'denied') THEN
    PERFORM nchat.mod_log(ch, NEW.stream_id, CASE NEW.status WHEN 'visible' THEN 'approve' ELSE 'deny' END,
                          NEW.user_id, NEW.id, '{}');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_chat_messages_mod_log AFTER UPDATE ON nchat_stream_chat_messages
  FOR EACH ROW EXECUTE FUNCTION nchat.log_message_moderation();

CREATE FUNCTION nchat.log_ban() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  b record := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
  PERFORM nchat.mod_log(coalesce(b.channel_id, nchat.stream_channel(b.stream_id)), b.stream_id,
                        CASE WHEN TG_OP = 'DELETE' THEN 'unban' WHEN b.expires_at IS NULL THEN 'ban' ELSE 'timeout' END,
                        b.user_id, NULL,
                        jsonb_build_object('reason', b.reason, 'expires_at', b.expires_at,
                                           'channel_wide', b.channel_id IS NOT NULL));
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_stream_bans_mod_log AFTER INSERT OR DELETE ON nchat_stream_bans
  FOR EACH ROW EXECUTE FUNCTION nchat.log_ban();

CREATE FUNCTION nchat.log_rule_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
  PERFORM nchat.mod_log((r ->> 'channel_id')::uuid, NULL,
                        CASE WHEN TG_TABLE_NAME = 'nchat_channel_blocked_terms'
                             THEN CASE WHEN TG_OP = 'DELETE' THEN 'term-removed' ELSE 'term-added' END
                             ELSE 'settings-changed' END,
                        NULL, NULL, r - 'channel_id');
  RETURN NULL;
END $$;
CREATE TRIGGER nchat_channel_blocked_terms_mod_log AFTER INSERT OR DELETE ON nchat_channel_blocked_terms
  FOR EACH ROW EXECUTE FUNCTION nchat.log_rule_change();
CREATE TRIGGER nchat_channel_chat_settings_mod_log AFTER INSERT OR UPDATE ON nchat_channel_chat_settings
  FOR EACH ROW EXECUTE FUNCTION nchat.log_rule_change();

-- New functions are executable by PUBLIC (Postgres's default); the server-only ones are revoked by name
-- (0018 and db/permissions.py SERVER_ONLY_FUNCTIONS): a blanket grant here would re-open them.
