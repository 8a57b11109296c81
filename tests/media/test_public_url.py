"""With NCHAT_PUBLIC_URL unset, the URLs handed to clients follow the address `serve` listens on."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx

from tests.support import JWT_SECRET, World

EXE = [sys.executable, "-m", "nchat_live.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_urls_follow_the_port_serve_listens_on(database_url: str, world: World, tmp_path: object) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NCHAT_PUBLIC_URL", "NCHAT_DATABASE_URL")}
    env.update(DATABASE_URL=database_url, NCHAT_JWT_SECRET=JWT_SECRET, NCHAT_MEDIA_ENABLED="0",
               NCHAT_RTMP_ENABLED="0", NCHAT_ORPHAN_SWEEP_SECONDS="0")
    proc = await asyncio.create_subprocess_exec(
        *EXE, "serve", "--port", str(port), "--no-migrate", env=env, cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            answer = await http.get(f"/api/streams/{world.public_stream}",
                                    headers={"Authorization": f"Bearer {world.token(world.alice)}"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body.get("playbackUrl"), body
        assert body["playbackUrl"] == f"http://localhost:{port}/hls/{world.public_stream}/master.m3u8"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
