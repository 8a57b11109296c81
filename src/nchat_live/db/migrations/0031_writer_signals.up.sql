-- Live-query signals sent by the writer instead of NOTIFY, for the writes that can.
--
-- A NOTIFYing commit takes a database-wide lock that it holds through its WAL flush, and wakes every
-- listening backend and, through it, every API process's LISTEN connection. For the hot one-statement
-- sends (sendChatMessage, sendReaction: Database.write_once) the server signals the tables itself
-- after commit, over the event bus every API process shares (graphql/hasura/live_queries.py), and names
-- those tables in the transaction-local setting nchat.signalled_tables: their NOTIFY is skipped, and
-- only theirs. A table the writer did not name (a trigger chain that grew) still notifies, so a name
-- missing from the list costs speed, never a missed change. Clients cannot set it: no client SQL runs.
CREATE OR REPLACE FUNCTION nchat.notify_table_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed text := coalesce(TG_ARGV[0], TG_TABLE_NAME);
BEGIN
  IF changed = ANY (string_to_array(current_setting('nchat.signalled_tables', true), ',')) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('nchat_table_changes', changed);
  RETURN NULL;
END $$;
