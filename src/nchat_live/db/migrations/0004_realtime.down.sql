DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
           WHERE g.tgname = 'nchat_live_changes' AND NOT g.tgisinternal LOOP
    EXECUTE format('DROP TRIGGER nchat_live_changes ON %I', t);
  END LOOP;
END $$;
DROP FUNCTION IF EXISTS nchat.ensure_change_triggers();
DROP FUNCTION IF EXISTS nchat.notify_table_change();
DROP TABLE IF EXISTS nchat.bus_payloads;
