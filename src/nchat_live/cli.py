"""`nchat-live`: serve, migrate, token, seed-demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import uuid
import warnings
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import uvicorn
import uvloop

from .app import create_app
from .auth import Claims, mint_token
from .config import Settings
from .db import migrations
from .db.migrations import MigrationError
from .errors import ConfigError, NchatError
from .media.extras.archive import ArchiveError, Archiver
from .observability import configure_logging
from .runtime import Runtime

log = logging.getLogger("nchat_live")


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its own shutdown, which would kill the process before
    the runtime stops (live segments unclosed, recordings unfinished). Here the signal only asks
    uvicorn to drain: websockets close with 1012, in-flight requests finish, then `runtime.stop()`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._ask_to_exit, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _ask_to_exit(self, sig: signal.Signals) -> None:
        log.info("%s: draining connections, then stopping", sig.name)
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def listening_url(host: str, port: int) -> str:
    """The base URL of `serve --host H --port P` as a client on this machine reaches it."""
    shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1", "localhost") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


async def _serve(args: argparse.Namespace, sock: socket.socket | None = None) -> None:
    if sock is None:
        _check_port(args.host, args.port)
    role = {"serve": "all", "api": "api", "media-worker": "media"}[args.command]
    settings = Settings()
    if settings.rtmp_host is None:
        # RTMP listens where HTTP does unless NCHAT_RTMP_HOST says otherwise.
        settings.rtmp_host = args.host
    if "public_url" not in settings.model_fields_set:
        # NCHAT_PUBLIC_URL unset: the URLs handed to clients follow the address this process listens on.
        settings.public_url = listening_url(args.host, args.port)
    runtime = Runtime(settings)
    await runtime.start(migrate=not args.no_migrate, role=role)
    try:
        app = create_app(runtime=runtime, role=role)
        base = listening_url(args.host, args.port)
        print(f"nchat-live serving on {base}", flush=True)
        print(f"  GraphQL API   {base}/v1/graphql  (also /graphql; websocket subscriptions on both)", flush=True)
        print(f"  Playground    {base}/graphql  (open in a browser)", flush=True)
        print(f"  Console       {base}/console", flush=True)
        print(f"  Health        {base}/healthz", flush=True)
        print(f"  Data          {runtime.data_location}", flush=True)
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on", log_config=None,
            ws_per_message_deflate=settings.ws_per_message_deflate,
        )
        await GracefulServer(config).serve(sockets=[sock] if sock is not None else None)
    finally:
        await runtime.stop()


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other workers bind too; the kernel spreads connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(args: argparse.Namespace) -> None:
    """One of `--workers` processes: the API on the shared port, migrations already applied."""
    configure_logging(args.log_level, json_logs=args.log_format == "json")
    args.no_migrate = True
    with contextlib.suppress(KeyboardInterrupt):
        _run_server(args, _reuseport_socket(args.host, args.port))


def _run_server(args: argparse.Namespace, sock: socket.socket | None = None) -> None:
    """`_serve` on uvloop for the API half (`api`: no media in the process; bench/graphql_bench.py
    measures the API on uvloop + httptools, uvicorn's choice when installed); media stays on asyncio's loop."""
    factory = uvloop.new_event_loop if args.command == "api" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(args, sock) if sock is not None else _serve(args))


def _serve_workers(args: argparse.Namespace) -> int:
    """`--workers N`: N processes on one port (SO_REUSEPORT), so every core serves websockets.

    Events reach subscribers on every worker through the shared bus, so the in-process memory bus
    is refused; media (ingest ports, transcoders) runs in one process, so `serve` with media on is
    too: run `api --workers N` next to one `media-worker`.
    """
    settings = Settings()
    if urlsplit(settings.bus_url).scheme == "memory":
        raise ConfigError("--workers needs a bus the processes share: set BUS_URL to redis://... or postgres://")
    if args.command == "serve" and settings.media_enabled:
        raise ConfigError("--workers runs the API only: use `api --workers N` and one `media-worker`, "
                          "or NCHAT_MEDIA_ENABLED=false")
    _check_port(args.host, args.port)
    if not args.no_migrate:
        asyncio.run(_migrate_only())
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(args,), name=f"nchat-worker-{i}") for i in range(args.workers)]
    for worker in workers:
        worker.start()
    print(f"nchat-live: {args.workers} workers on {args.host}:{args.port}", flush=True)

    def forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    # A worker that dies takes the others down: a supervisor restarts the whole service.
    while any(w.is_alive() for w in workers):
        for worker in workers:
            worker.join(0.5)
            if worker.exitcode not in (None, 0) and status == 0:
                status = 1
                log.error("worker %s exited with %s; stopping the others", worker.name, worker.exitcode)
                forward(signal.SIGTERM, None)
    return status


async def _migrate_only() -> None:
    runtime = Runtime()
    await runtime.open_database(migrate=True)
    await runtime.stop()


async def _migrate(args: argparse.Namespace) -> None:
    runtime = Runtime()
    await runtime.open_database(migrate=False)
    try:
        db = runtime.database
        conn = await db.connect_raw()
        try:
            if args.action == "up":
                applied = await migrations.upgrade(conn)
                print(f"applied {applied}" if applied else "already up to date")
            elif args.action == "down":
                reverted = await migrations.downgrade(conn, args.steps)
                print(f"reverted {reverted}" if reverted else "nothing to revert")
            else:
                state = await migrations.status(conn)
                for m in migrations.available():
                    mark = "applied" if m.version in state.applied else "pending"
                    print(f"{m.version:04d}_{m.name}: {mark}")
                for v in state.unknown:
                    print(f"{v:04d}: applied but unknown to this version (database is newer)")
                print("current" if state.current else "not current")
        finally:
            await conn.close()
    finally:
        await runtime.stop()


async def _archive(args: argparse.Namespace) -> None:
    runtime = Runtime()
    await runtime.open_database()
    try:
        report = await Archiver(runtime.settings, runtime.database).run()
        print(report.summary())
    finally:
        await runtime.stop()


def _token(args: argparse.Namespace) -> None:
    settings = Settings()
    print(mint_token(settings.jwt_secret, args.user_id, args.role, ttl_seconds=args.ttl))


async def _seed_demo(args: argparse.Namespace) -> None:
    runtime = Runtime()
    await runtime.open_database()
    try:
        async with runtime.database.session(Claims.service()) as s:
            user = await s.fetchrow(
                "INSERT INTO nchat_users (username, display_name, email) VALUES ('demo', 'Demo Broadcaster', "
                "'demo@example.com') ON CONFLICT (username) DO UPDATE SET display_name = EXCLUDED.display_name "
                "RETURNING id"
            )
            assert user is not None
            user_id = str(user["id"])
            channel = await s.fetchrow(
                "INSERT INTO nchat_channels (name, slug, description, owner_id) VALUES "
                "('Demo channel', 'demo', 'A public channel to try nchat-live', $1) "
                "ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                user_id,
            )
            assert channel is not None
            channel_id = str(channel["id"])
            await s.fetchval(
                "INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner') "
                "ON CONFLICT (channel_id, user_id) DO NOTHING RETURNING 1",
                channel_id, user_id,
            )
            stream = await s.fetchrow(
                "SELECT id, stream_key FROM nchat_streams WHERE channel_id = $1 AND status = 'scheduled' LIMIT 1",
                channel_id,
            )
            if stream is None:
                stream = await s.fetchrow(
                    "INSERT INTO nchat_streams (channel_id, broadcaster_id, title, description, scheduled_at) "
                    "VALUES ($1, $2, 'Demo stream', 'Go live from the console', now() + interval '1 hour') "
                    "RETURNING id, stream_key",
                    channel_id, user_id,
                )
            assert stream is not None
        settings = runtime.settings
        print(f"user     {user_id} (demo)")
        print(f"channel  {channel_id} (demo)")
        print(f"stream   {stream['id']}")
        print(f"key      {stream['stream_key']}")
        print(f"token    {mint_token(settings.jwt_secret, user_id, 'user')}")
    finally:
        await runtime.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nchat-live", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    for name, summary, port in (
        ("serve", "run the API, realtime and media in one process", 8080),
        ("api", "run only the API half: GraphQL, subscriptions, REST, console (stateless, scale out)", 8080),
        ("media-worker", "run only the media half: WHIP/RTMP ingest, transcoding, HLS output", 8081),
    ):
        serve = sub.add_parser(name, help=summary)
        serve.add_argument("--host", default="127.0.0.1")
        serve.add_argument("--port", type=int, default=port)
        serve.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations first")
        serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
        serve.add_argument("--log-format", default="text", choices=["text", "json"],
                           help="json: one object a line with the request id (for log shippers)")
        if name != "media-worker":
            serve.add_argument("--workers", type=int, default=1,
                               help="API processes on one port (SO_REUSEPORT), sharing events through the "
                                    "Redis or Postgres bus; use the cores you have")

    migrate = sub.add_parser("migrate", help="apply, revert or list schema migrations")
    migrate.add_argument("action", choices=["up", "down", "status"])
    migrate.add_argument("--steps", type=int, default=1, help="how many to revert with 'down'")

    token = sub.add_parser("token", help="mint a development JWT")
    token.add_argument("--user-id", default=str(uuid.UUID(int=1)))
    token.add_argument("--role", default="user", choices=["user", "moderator", "admin"])
    token.add_argument("--ttl", type=int, default=7 * 24 * 3600, help="seconds until it expires")

    sub.add_parser("seed-demo", help="create a demo user, channel and stream; print a token for them")
    sub.add_parser("archive", help="move old recordings and quality-metrics months to NCHAT_ARCHIVE_URL "
                                   "(ages: NCHAT_ARCHIVE_RECORDINGS_AFTER_DAYS, NCHAT_ARCHIVE_METRICS_AFTER_DAYS)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # The embedded server's library warns when XDG_RUNTIME_DIR is unset and falls back to /tmp, which
    # is fine here; the warning would only confuse a new user.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "log_level", "info"), json_logs=getattr(args, "log_format", "text") == "json")
    try:
        if args.command in ("serve", "api") and args.workers > 1:
            return _serve_workers(args)
        if args.command in ("serve", "api", "media-worker"):
            _run_server(args)
        elif args.command == "migrate":
            asyncio.run(_migrate(args))
        elif args.command == "token":
            _token(args)
        elif args.command == "seed-demo":
            asyncio.run(_seed_demo(args))
        elif args.command == "archive":
            asyncio.run(_archive(args))
    except (ConfigError, NchatError) as exc:
        print(f"nchat-live: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (MigrationError, ArchiveError) as exc:
        print(f"nchat-live: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
