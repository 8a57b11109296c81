-- 0024's text.
CREATE OR REPLACE FUNCTION nchat.notify_table_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('nchat_table_changes', coalesce(TG_ARGV[0], TG_TABLE_NAME));
  RETURN NULL;
END $$;
