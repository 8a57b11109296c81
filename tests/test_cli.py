"""The `nchat-live` command as a new user meets it: serve on the embedded database, and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
import websockets

from tests.support import JWT_SECRET

EXE = [sys.executable, "-m", "nchat_live.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NCHAT_DATABASE_URL")}
    env.update(NCHAT_MEDIA_ENABLED="0", NCHAT_JWT_SECRET=JWT_SECRET)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nchat-live: error:")]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


@pytest.mark.embedded
@pytest.mark.slow
def test_serve_starts_on_an_embedded_database_and_answers_health(tmp_path: Path) -> None:
    port = _free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*EXE, "serve", "--port", str(port)],
        env=_env(NCHAT_DATA_DIR=str(tmp_path / "data")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        assert status == 200, proc.stdout.read() if proc.poll() is not None and proc.stdout else "no answer"
        print(f"cold start to healthy: {time.monotonic() - started:.1f}s")
        assert (tmp_path / "data" / "pgdata").is_dir()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Data" in out and str(tmp_path / "data") in out
    assert "Traceback" not in out


def test_malformed_database_url_is_one_clear_line() -> None:
    result = _run(["migrate", "status"], _env(DATABASE_URL="not a url"))
    _assert_one_clear_line(result, "DATABASE_URL")


def test_unreachable_database_is_one_clear_line() -> None:
    result = _run(["migrate", "status"], _env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{_free_port()}/x"))
    _assert_one_clear_line(result, "cannot connect to the database")


def test_unwritable_data_folder_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _run(["migrate", "status"], _env(NCHAT_DATA_DIR=str(blocker / "data")))
    _assert_one_clear_line(result, "not writable")


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _run(["serve", "--port", str(port)], _env(DATABASE_URL="postgresql://postgres@127.0.0.1:1/x"))
    _assert_one_clear_line(result, f"cannot listen on 127.0.0.1:{port}")


def test_token_mints_hasura_claims() -> None:
    result = _run(["token", "--user-id", "u-1", "--role", "moderator"], _env())
    assert result.returncode == 0, result.stderr
    key = "test-secret-key-that-is-long-enough-for-hs256"
    payload = jwt.decode(result.stdout.strip(), key, algorithms=["HS256"])
    claims = payload["https://hasura.io/jwt/claims"]
    assert claims["x-hasura-user-id"] == "u-1"
    assert claims["x-hasura-default-role"] == "moderator"
    assert set(claims["x-hasura-allowed-roles"]) == {"user", "moderator"}


@pytest.mark.slow
async def test_sigterm_drains_websockets_and_stops_the_runtime(database_url: str) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        *EXE, "serve", "--port", str(port), env=_env(DATABASE_URL=database_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(150):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/graphql",
                                      subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": "subscription { nchat_streams(limit: 1) { id } }"}}))
            assert json.loads(await ws.recv())["type"] == "next"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stdout is not None
    out = (await proc.stdout.read()).decode()
    assert "stopped database pool" in out  # the runtime stopped, in order, before the process exited
    assert "Traceback" not in out
