"""Settings from environment variables, each with a default that works on a fresh machine."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process configuration. Every field reads the environment variable in its alias."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "NCHAT_DATABASE_URL"),
        description="postgresql://... ; unset starts an embedded PostgreSQL in data_dir",
    )
    data_dir: Path = Field(default=Path(".data"), validation_alias="NCHAT_DATA_DIR")
    db_pool_size: int = Field(default=10, validation_alias="NCHAT_DB_POOL_SIZE")

    admin_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("NCHAT_ADMIN_SECRET", "HASURA_GRAPHQL_ADMIN_SECRET")
    )
    # Hasura's JSON format: {"type": "HS256", "key": "..."} or {"type": "RS256", "jwk_url": "..."}.
    jwt_secret: str = Field(
        default='{"type": "HS256", "key": "nchat-live-development-secret-change-me-0123456789"}',
        validation_alias=AliasChoices("NCHAT_JWT_SECRET", "HASURA_GRAPHQL_JWT_SECRET"),
    )
    unauthorized_role: str | None = Field(
        default="anonymous",
        validation_alias=AliasChoices("NCHAT_UNAUTHORIZED_ROLE", "HASURA_GRAPHQL_UNAUTHORIZED_ROLE"),
    )

    bus_url: str = Field(default="memory://", validation_alias=AliasChoices("BUS_URL", "NCHAT_BUS_URL"))

    # Stream scheduler (resolvers/scheduler.py): reminder lead times in minutes, comma-separated
    # ("15,0" = 15 minutes before and at start); scheduled streams not live this long after their
    # start are cancelled.
    reminder_lead_minutes: str = Field(default="15,0", validation_alias="NCHAT_REMINDER_LEAD_MINUTES")
    schedule_grace_minutes: int = Field(default=30, validation_alias="NCHAT_SCHEDULE_GRACE_MINUTES")
    # Quotas and rates per user on every creating path (migration 0012: Postgres triggers, the same
    # answer for the domain operations and the table API); the server writes them to the nchat.limits
    # table at start (resolvers/limits.py). Channels owned and created per hour; streams created per
    # hour, scheduled (upcoming) at once and live at once; clips per hour; questions per window per
    # stream; scheduledAt at most this many days ahead and this many seconds in the past.
    quota_channels_per_user: int = Field(default=100, validation_alias="NCHAT_QUOTA_CHANNELS_PER_USER")
    rate_channels_per_hour: int = Field(default=30, validation_alias="NCHAT_RATE_CHANNELS_PER_HOUR")
    rate_streams_per_hour: int = Field(default=60, validation_alias="NCHAT_RATE_STREAMS_PER_HOUR")
    quota_scheduled_streams: int = Field(default=100, validation_alias="NCHAT_QUOTA_SCHEDULED_STREAMS")
    quota_live_streams: int = Field(default=10, validation_alias="NCHAT_QUOTA_LIVE_STREAMS")
    rate_clips_per_hour: int = Field(default=120, validation_alias="NCHAT_RATE_CLIPS_PER_HOUR")
    rate_questions: int = Field(default=5, validation_alias="NCHAT_RATE_QUESTIONS")
    rate_questions_window_seconds: float = Field(default=60.0, validation_alias="NCHAT_RATE_QUESTIONS_WINDOW_SECONDS")
    schedule_max_days_ahead: int = Field(default=366, validation_alias="NCHAT_SCHEDULE_MAX_DAYS_AHEAD")
    schedule_past_tolerance_seconds: int = Field(
        default=300, validation_alias="NCHAT_SCHEDULE_PAST_TOLERANCE_SECONDS"
    )
    # Request bodies of the REST routes (/api/...); GraphQL and the rest use max_body_bytes (body_limits.py).
    max_rest_body_bytes: int = Field(default=64 * 1024, validation_alias="NCHAT_MAX_REST_BODY_BYTES")

    media_enabled: bool = Field(default=True, validation_alias="NCHAT_MEDIA_ENABLED")
    media_dir: Path = Field(default=Path(".data/media"), validation_alias="NCHAT_MEDIA_DIR")
    recording_dir: Path = Field(
        default=Path(".data/recordings"),
        validation_alias=AliasChoices("STREAM_RECORDING_PATH", "NCHAT_RECORDING_DIR"),
    )
    recording_enabled: bool = Field(default=True, validation_alias="STREAM_RECORDING_ENABLED")
    rtmp_port: int = Field(default=1935, validation_alias="NCHAT_RTMP_PORT")
    video_encoder: str = Field(default="libx264", validation_alias="NCHAT_VIDEO_ENCODER")
    ice_servers: str = Field(default="", validation_alias="NCHAT_ICE_SERVERS")
    # A publisher that reconnects within this many seconds continues the same stream.
    publisher_grace_seconds: float = Field(default=10.0, validation_alias="NCHAT_PUBLISHER_GRACE_SECONDS")
    media_metrics_seconds: float = Field(default=5.0, validation_alias="NCHAT_MEDIA_METRICS_SECONDS")
    # Rewind window of the DVR playlist (0 turns DVR off); live playlists stay short regardless.
    dvr_window_seconds: float = Field(default=7200.0, validation_alias="NCHAT_DVR_WINDOW_SECONDS")
    thumbnail_interval_seconds: float = Field(default=10.0, validation_alias="NCHAT_THUMBNAIL_INTERVAL_SECONDS")
    # Live HLS files of an ended stream are removed this long after it ends (players finishing).
    media_cleanup_delay_seconds: float = Field(default=30.0, validation_alias="NCHAT_MEDIA_CLEANUP_DELAY_SECONDS")
    rtmp_enabled: bool = Field(default=True, validation_alias="NCHAT_RTMP_ENABLED")
    rtmp_media_timeout_seconds: float = Field(default=10.0, validation_alias="NCHAT_RTMP_MEDIA_TIMEOUT_SECONDS")

    # Scale-out (media/leases.py): a media worker's id and the URL WHIP publishers are redirected to
    # (unset: a random id, the public URL); leases expire after lease_ttl_seconds without a renewal;
    # orphaned streams are looked for every orphan_sweep_seconds (0: never).
    worker_id: str | None = Field(default=None, validation_alias="NCHAT_WORKER_ID")
    worker_url: str | None = Field(default=None, validation_alias="NCHAT_WORKER_URL")
    lease_ttl_seconds: float = Field(default=6.0, validation_alias="NCHAT_LEASE_TTL_SECONDS")
    orphan_sweep_seconds: float = Field(default=2.0, validation_alias="NCHAT_ORPHAN_SWEEP_SECONDS")
    # Where live HLS goes: unset is media_dir on local disk; s3://bucket/prefix?endpoint=http://host:9000
    # (&public=https://cdn.example) selects S3-compatible storage.
    storage_url: str | None = Field(default=None, validation_alias="NCHAT_STORAGE_URL")

    public_url: str = Field(default="http://localhost:8080", validation_alias="NCHAT_PUBLIC_URL")
    rtmp_public_url: str | None = Field(default=None, validation_alias="NCHAT_RTMP_PUBLIC_URL")

    max_query_depth: int = Field(default=15, validation_alias="NCHAT_MAX_QUERY_DEPTH")
    max_rows: int = Field(default=1000, validation_alias="NCHAT_MAX_ROWS")
    max_body_bytes: int = Field(default=1_000_000, validation_alias="NCHAT_MAX_BODY_BYTES")
    introspection_for_all: bool = Field(default=True, validation_alias="NCHAT_INTROSPECTION_FOR_ALL")
    # GraphQL cost limits (graphql/limits.py), checked before validation or any database work, on
    # HTTP and websockets alike: lexer tokens, aliases, root fields, fields, operations in one HTTP batch, and
    # the estimated worst-case rows (each list field counts its `limit`, or max_rows without one).
    max_query_tokens: int = Field(default=10_000, validation_alias="NCHAT_MAX_QUERY_TOKENS")
    max_query_aliases: int = Field(default=100, validation_alias="NCHAT_MAX_QUERY_ALIASES")
    max_root_fields: int = Field(default=50, validation_alias="NCHAT_MAX_ROOT_FIELDS")
    # Field selections per document (fragments counted at each spread): bounds graphql-core's
    # quadratic same-name field comparison (the worst document at 300 validates in about 60 ms).
    max_query_fields: int = Field(default=300, validation_alias="NCHAT_MAX_QUERY_FIELDS")
    max_batch_size: int = Field(default=20, validation_alias="NCHAT_MAX_BATCH_SIZE")
    max_query_cost: int = Field(default=5_000_000, validation_alias="NCHAT_MAX_QUERY_COST")
    # Server-side time: Postgres statement_timeout per request (admin has its own), a deadline for a
    # whole GraphQL request, and database sessions one client (user, else address) may hold at once.
    statement_timeout_ms: int = Field(default=10_000, validation_alias="NCHAT_STATEMENT_TIMEOUT_MS")
    admin_statement_timeout_ms: int = Field(default=60_000, validation_alias="NCHAT_ADMIN_STATEMENT_TIMEOUT_MS")
    request_timeout_seconds: float = Field(default=30.0, validation_alias="NCHAT_REQUEST_TIMEOUT_SECONDS")
    db_sessions_per_client: int = Field(default=5, validation_alias="NCHAT_DB_SESSIONS_PER_CLIENT")
    # Ingest limits (media/rtmp/, media/whip.py, media/throttle.py). RTMP binds rtmp_host (unset: the
    # --host of `serve`, else 127.0.0.1); a connection must publish with a valid key within
    # rtmp_publish_timeout_seconds and is dropped after rtmp_idle_timeout_seconds without media.
    rtmp_host: str | None = Field(default=None, validation_alias="NCHAT_RTMP_HOST")
    rtmp_publish_timeout_seconds: float = Field(default=10.0, validation_alias="NCHAT_RTMP_PUBLISH_TIMEOUT_SECONDS")
    rtmp_idle_timeout_seconds: float = Field(default=30.0, validation_alias="NCHAT_RTMP_IDLE_TIMEOUT_SECONDS")
    rtmp_max_chunk_size: int = Field(default=1024 * 1024, validation_alias="NCHAT_RTMP_MAX_CHUNK_SIZE")
    rtmp_max_message_bytes: int = Field(default=8 * 1024 * 1024, validation_alias="NCHAT_RTMP_MAX_MESSAGE_BYTES")
    # Bytes of unfinished messages: per connection (one whole message of the largest size), and over
    # all connections (past it, the connection holding the most before publishing is dropped).
    rtmp_max_buffered_bytes: int = Field(default=8 * 1024 * 1024, validation_alias="NCHAT_RTMP_MAX_BUFFERED_BYTES")
    rtmp_max_total_buffered_bytes: int = Field(
        default=32 * 1024 * 1024, validation_alias="NCHAT_RTMP_MAX_TOTAL_BUFFERED_BYTES")
    rtmp_max_chunk_streams: int = Field(default=32, validation_alias="NCHAT_RTMP_MAX_CHUNK_STREAMS")
    # A WHIP session must connect and send media this soon after its 201, or it is closed.
    whip_connect_timeout_seconds: float = Field(default=15.0, validation_alias="NCHAT_WHIP_CONNECT_TIMEOUT_SECONDS")
    whip_max_sdp_bytes: int = Field(default=64 * 1024, validation_alias="NCHAT_WHIP_MAX_SDP_BYTES")
    # WHEP playback (media/egress/whep.py): sessions one process serves (503 beyond), sessions one client
    # address holds (429 beyond), and a session with no connected peer this long after its 201 is closed.
    # The offer's size limit is NCHAT_WHIP_MAX_SDP_BYTES.
    whep_max_viewers: int = Field(default=100, validation_alias="NCHAT_WHEP_MAX_VIEWERS")
    whep_max_sessions_per_client: int = Field(default=8, validation_alias="NCHAT_WHEP_MAX_SESSIONS_PER_CLIENT")
    whep_connect_timeout_seconds: float = Field(default=15.0, validation_alias="NCHAT_WHEP_CONNECT_TIMEOUT_SECONDS")
    # Simulcast destinations may be internal addresses (loopback, private, link-local...): off, so a
    # channel manager cannot point the media worker at the internal network.
    simulcast_allow_private: bool = Field(default=False, validation_alias="NCHAT_SIMULCAST_ALLOW_PRIVATE")
    # Streams one media worker ingests at once (placement skips a full worker; beyond it: 503).
    media_capacity: int = Field(default=4, validation_alias="NCHAT_MEDIA_CAPACITY")
    # Failed stream-key attempts per client address (WHIP and RTMP): this many within the window,
    # then 429 / dropped until the window frees; each failure answers after a small delay.
    ingest_key_failures: int = Field(default=5, validation_alias="NCHAT_INGEST_KEY_FAILURES")
    ingest_key_window_seconds: float = Field(default=60.0, validation_alias="NCHAT_INGEST_KEY_WINDOW_SECONDS")
    ingest_key_failure_delay_seconds: float = Field(
        default=0.5, validation_alias="NCHAT_INGEST_KEY_FAILURE_DELAY_SECONDS"
    )
    # Live publishers' keys (and bans, status) are checked again this often, besides the bus events.
    ingest_key_check_seconds: float = Field(default=5.0, validation_alias="NCHAT_INGEST_KEY_CHECK_SECONDS")
    # Private media (media/access.py): stream-scoped media tokens' lifetime and signing secret (unset:
    # derived from the HS JWT key; set it when the JWT secret is RS*/JWKS and several processes serve
    # media); blocking playlist reloads and preload-hinted parts one client address may hold at once.
    media_token_ttl_seconds: float = Field(default=300.0, validation_alias="NCHAT_MEDIA_TOKEN_TTL_SECONDS")
    media_token_secret: str | None = Field(default=None, validation_alias="NCHAT_MEDIA_TOKEN_SECRET")
    # Guest speakers (resolvers/guests.py, migration 0019): accepted guests plus pending invitations per
    # stream (written to nchat.limits at start); the lifetime of a guest's WHIP publish token (signed
    # like media tokens, with its own derived key).
    max_guests: int = Field(default=3, ge=0, validation_alias="NCHAT_MAX_GUESTS")
    guest_token_ttl_seconds: float = Field(default=600.0, gt=0, validation_alias="NCHAT_GUEST_TOKEN_TTL_SECONDS")
    # Audience analytics (resolvers/audience.py): keep viewers' addresses (default: a keyed pseudonym
    # only), and a MaxMind-format country database (default: the one geoip2fast ships).
    analytics_store_ip: bool = Field(default=False, validation_alias="NCHAT_ANALYTICS_STORE_IP")
    geoip_db: Path | None = Field(default=None, validation_alias="NCHAT_GEOIP_DB")
    # Archive (media/extras/archive.py; `nchat-live archive`, and every archive_interval_seconds on media
    # workers when NCHAT_ARCHIVE_URL is set): recordings and quality-metrics months older than these
    # ages move to cold storage (file:///folder or s3://bucket/prefix?endpoint=&region=).
    archive_url: str | None = Field(default=None, validation_alias="NCHAT_ARCHIVE_URL")
    archive_recordings_after_days: float = Field(default=90.0, validation_alias="NCHAT_ARCHIVE_RECORDINGS_AFTER_DAYS")
    archive_metrics_after_days: float = Field(default=90.0, validation_alias="NCHAT_ARCHIVE_METRICS_AFTER_DAYS")
    archive_interval_seconds: float = Field(default=3600.0, validation_alias="NCHAT_ARCHIVE_INTERVAL_SECONDS")
    hls_max_held_per_client: int = Field(default=32, validation_alias="NCHAT_HLS_MAX_HELD_PER_CLIENT")

    # Live queries (graphql/hasura/live_queries.py): one query re-runs at most once per this many ms
    # (a burst of writes coalesces; a change after a quiet spell is pushed at once). 0: no throttle.
    live_query_min_interval_ms: int = Field(default=100, ge=0, validation_alias="NCHAT_LIVE_QUERY_MIN_INTERVAL_MS")

    # GraphQL websockets (subscriptions/websocket.py): keep-alive period, concurrent operations per
    # socket, largest client message, and frames queued for a slow client before it is dropped.
    ws_keepalive_seconds: float = Field(default=10.0, validation_alias="NCHAT_WS_KEEPALIVE_SECONDS")
    ws_max_operations: int = Field(default=200, validation_alias="NCHAT_WS_MAX_OPERATIONS")
    ws_max_live_queries: int = Field(default=50, validation_alias="NCHAT_WS_MAX_LIVE_QUERIES")
    ws_max_connections_per_client: int = Field(default=500, validation_alias="NCHAT_WS_MAX_CONNECTIONS_PER_CLIENT")
    ws_max_message_bytes: int = Field(default=256 * 1024, validation_alias="NCHAT_WS_MAX_MESSAGE_BYTES")
    ws_send_queue: int = Field(default=512, validation_alias="NCHAT_WS_SEND_QUEUE")
    # Chat frames are small, so compressing each one per subscriber costs more CPU than it saves bytes.
    ws_per_message_deflate: bool = Field(default=False, validation_alias="NCHAT_WS_PER_MESSAGE_DEFLATE")
    # Frames for one socket are written together once per event-loop pass; a delay (ms) collects more
    # per write (fewer system calls in bursts) at that much added latency.
    ws_batch_ms: float = Field(default=0.0, ge=0, le=100, validation_alias="NCHAT_WS_BATCH_MS")

    @property
    def rtmp_ingest_url(self) -> str:
        if self.rtmp_public_url:
            return self.rtmp_public_url
        host = self.public_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        return f"rtmp://{host}:{self.rtmp_port}/live"
