-- One full recording per stream: the recorder's finalize upserts on it (clips are many).
CREATE UNIQUE INDEX nchat_stream_recordings_one_full_idx ON nchat_stream_recordings (stream_id) WHERE kind = 'full';
