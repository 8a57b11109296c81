-- The PostgreSQL bus keeps every event for a few minutes, so a process whose LISTEN connection was
-- down (a database restart) replays what it missed instead of losing it.
ALTER TABLE nchat.bus_payloads ADD COLUMN channel text NOT NULL DEFAULT '';
CREATE INDEX bus_payloads_channel_id_idx ON nchat.bus_payloads (channel, id);
