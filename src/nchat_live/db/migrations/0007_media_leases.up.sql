-- Scale-out: media workers announce themselves and hold a lease per stream they ingest. A lease
-- that is not renewed expires, and another worker takes the stream over (generation + 1).

CREATE TABLE nchat_media_workers (
  worker_id text PRIMARY KEY,
  url text,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  streams integer NOT NULL DEFAULT 0,
  capacity integer NOT NULL DEFAULT 4
);
CREATE INDEX nchat_media_workers_heartbeat_idx ON nchat_media_workers (heartbeat_at);

CREATE TABLE nchat_media_leases (
  stream_id uuid PRIMARY KEY REFERENCES nchat_streams (id) ON DELETE CASCADE,
  worker_id text NOT NULL,
  generation integer NOT NULL DEFAULT 1,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX nchat_media_leases_expiry_idx ON nchat_media_leases (expires_at);
CREATE INDEX nchat_media_leases_worker_idx ON nchat_media_leases (worker_id);

-- Server-only tables: only the admin role (the server's own sessions) touches them.
ALTER TABLE nchat_media_workers ENABLE ROW LEVEL SECURITY;
ALTER TABLE nchat_media_workers FORCE ROW LEVEL SECURITY;
ALTER TABLE nchat_media_leases ENABLE ROW LEVEL SECURITY;
ALTER TABLE nchat_media_leases FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON nchat_media_workers, nchat_media_leases TO nchat_admin;
CREATE POLICY admin_all ON nchat_media_workers TO nchat_admin USING (true) WITH CHECK (true);
CREATE POLICY admin_all ON nchat_media_leases TO nchat_admin USING (true) WITH CHECK (true);
