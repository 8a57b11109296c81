-- The live-query change notification (0004) per changed row instead of per statement: a statement
-- trigger fires for a statement that changed nothing too, so the chat insert's counter trigger (0003),
-- whose UPDATE of nchat_stream_viewers matches no row when the sender is not a viewer, woke every live
-- query reading viewers on every chat message. A row trigger fires only for rows the statement changed.
-- Still one notification per table per transaction: NOTIFY folds identical payloads (hashed, so a bulk
-- statement's rows cost a lookup each). Measured against transition tables (REFERENCING NEW TABLE +
-- IF EXISTS): a single-row insert 1.02x the statement trigger's cost here, transition tables 1.08x.
-- chat_counters (0003) keeps its UPDATE of the sender's viewer row: sent_chat_messages is a real count, and
-- with row triggers a match of no row no longer notifies, so an EXISTS guard would only add a second
-- index probe for a sender who is watching. Its UPDATE of the stream always changes a row
-- (total_chat_messages), so that notification is a real change and stays.
-- The table's name travels as the trigger's argument: the row trigger of a partitioned table is cloned
-- onto its partitions, where TG_TABLE_NAME would name the partition, which no live query reads.
CREATE OR REPLACE FUNCTION nchat.notify_table_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('nchat_table_changes', coalesce(TG_ARGV[0], TG_TABLE_NAME));
  RETURN NULL;
END $$;

-- TRUNCATE has no row triggers: it keeps a statement trigger of its own.
CREATE OR REPLACE FUNCTION nchat.ensure_change_triggers() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  t text;
  n integer := 0;
BEGIN
  FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname LIKE 'nchat\_%'
             AND NOT c.relispartition AND c.relname <> 'nchat_schema_migrations'
             AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'nchat_live_changes')
  LOOP
    EXECUTE format(
      'CREATE TRIGGER nchat_live_changes AFTER INSERT OR UPDATE OR DELETE ON %I '
      'FOR EACH ROW EXECUTE FUNCTION nchat.notify_table_change(%L)', t, t);
    EXECUTE format(
      'CREATE TRIGGER nchat_live_truncates AFTER TRUNCATE ON %I '
      'FOR EACH STATEMENT EXECUTE FUNCTION nchat.notify_table_change(%L)', t, t);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

DO $$
DECLARE
  t regclass;
BEGIN
  FOR t IN SELECT g.tgrelid::regclass FROM pg_trigger g WHERE g.tgname = 'nchat_live_changes' AND g.tgparentid = 0
  LOOP
    EXECUTE format('DROP TRIGGER nchat_live_changes ON %s', t);
  END LOOP;
END $$;
SELECT nchat.ensure_change_triggers();
