DO $$
DECLARE
  t regclass;
BEGIN
  FOR t IN SELECT g.tgrelid::regclass FROM pg_trigger g
           WHERE g.tgname IN ('nchat_live_changes', 'nchat_live_truncates') AND g.tgparentid = 0
  LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS nchat_live_changes ON %s', t);
    EXECUTE format('DROP TRIGGER IF EXISTS nchat_live_truncates ON %s', t);
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION nchat.notify_table_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('nchat_table_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$;

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
      'CREATE TRIGGER nchat_live_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
      'FOR EACH STATEMENT EXECUTE FUNCTION nchat.notify_table_change()', t);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
SELECT nchat.ensure_change_triggers();
