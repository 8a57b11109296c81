-- Realtime: bus payloads too large for NOTIFY, and table-change notifications for live queries.

-- NOTIFY payloads must stay under 8000 bytes; a larger event is stored here and only its id is
-- sent. Rows are read by every listening process and swept after a few minutes. Request roles
-- get no grant on it: it lives in the nchat schema, outside the GraphQL surface.
CREATE TABLE nchat.bus_payloads (
  id bigserial PRIMARY KEY,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bus_payloads_created_idx ON nchat.bus_payloads (created_at);

-- One notification per changed table per transaction: NOTIFY folds identical payloads within a
-- transaction and delivers them only at commit, so a rolled-back write wakes no live query.
CREATE FUNCTION nchat.notify_table_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('nchat_table_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$;

-- Tables added by later migrations get the trigger too: the live-query manager calls this at
-- start-up (it is idempotent).
CREATE FUNCTION nchat.ensure_change_triggers() RETURNS integer LANGUAGE plpgsql AS $$
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
      'CREATE TRIGGER nchat_live_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
      'FOR EACH STATEMENT EXECUTE FUNCTION nchat.notify_table_change()', t);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION nchat.ensure_change_triggers() FROM PUBLIC;
SELECT nchat.ensure_change_triggers();
