DROP INDEX IF EXISTS nchat.bus_payloads_channel_id_idx;
ALTER TABLE nchat.bus_payloads DROP COLUMN IF EXISTS channel;
