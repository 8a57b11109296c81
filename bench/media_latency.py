"""Glass-to-glass latency: publish over WHIP, read the HLS output back as a player would.

The publisher (aiortc, 1280x720 at 30 fps) draws its wall-clock send time into every frame; two
players read the 480p rendition of the same stream at the same time:
- LL-HLS: blocking playlist reloads (`_HLS_msn`/`_HLS_part`) for each next part, then the part;
- plain HLS: reloads the playlist every half target duration and fetches each new whole segment.
Each decoded frame's stamp is compared with the moment its bytes arrived: p50/p95 of that delay
(the latency at the live edge; a player adds its hold-back, PART-HOLD-BACK or HOLD-BACK, on top).

Needs PostgreSQL (NCHAT_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres): a scratch
database is created and dropped.

    .venv/bin/python bench/media_latency.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import av
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scratch import bench_stream, scratch_database
from tests.media.media_client import SyntheticVideo, WhipClient, read_stamp

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.runtime import Runtime

RENDITION = "480p"
WIDTH = 854


DEBUG = os.environ.get("BENCH_DEBUG") == "1"


def stamps(init: bytes, media: bytes, epoch: float, received: float, skip: int = 0) -> list[float]:
    """Delays of the frames in `media` after the first `skip` (parts decode only after their segment's start)."""
    delays = []
    with av.open(io.BytesIO(init + media), format="mp4") as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index < skip:
                continue
            value = read_stamp(frame, WIDTH) / 1000
            delay = received - epoch - value
            if DEBUG:
                print("stamp", index, round(value, 3), round(delay, 3), file=sys.stderr)
            if 0 <= delay < 30:  # a misread stamp is far off; drop it
                delays.append(delay)
    return delays


def frame_count(init: bytes, media: bytes) -> int:
    with av.open(io.BytesIO(init + media), format="mp4") as container:
        return sum(1 for _ in container.decode(video=0))


async def ll_player(http: httpx.AsyncClient, base: str, epoch: float, until: float) -> list[float]:
    inits: dict[str, bytes] = {}
    delays: list[float] = []
    playlist = (await http.get(f"{base}/index.m3u8")).text
    seen = set(re.findall(r'URI="(seg\d+\.\d+\.m4s)"', playlist))
    current, buffered = "", b""
    while time.time() < until:
        parts = re.findall(r'URI="seg(\d+)\.(\d+)\.m4s"', playlist)
        msn, index = (int(parts[-1][0]), int(parts[-1][1])) if parts else (0, -1)
        response = await http.get(f"{base}/index.m3u8", params={"_HLS_msn": msn, "_HLS_part": index + 1})
        if DEBUG:
            print("ll", msn, index, response.status_code, file=sys.stderr)
        if response.status_code != 200:
            playlist = (await http.get(f"{base}/index.m3u8")).text
            continue
        playlist = response.text
        init_uri = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', playlist)[-1]
        if init_uri not in inits:
            inits[init_uri] = (await http.get(f"{base}/{init_uri}")).content
        for uri in re.findall(r'URI="(seg\d+\.\d+\.m4s)"', playlist):
            if uri in seen:
                continue
            seen.add(uri)
            segment = uri.split(".")[0]
            body = (await http.get(f"{base}/{uri}")).content
            received = time.time()
            if uri.endswith(".0.m4s") or segment != current:
                current, buffered = segment, b""
            # A part decodes only with the parts of its segment before it (they start at the keyframe).
            before = frame_count(inits[init_uri], buffered) if buffered else 0
            buffered += body
            if uri.endswith(".0.m4s") or before:
                delays += stamps(inits[init_uri], buffered, epoch, received, skip=before)
    return delays


async def plain_player(http: httpx.AsyncClient, base: str, epoch: float, until: float) -> list[float]:
    inits: dict[str, bytes] = {}
    delays: list[float] = []
    seen: set[str] | None = None
    while time.time() < until:
        playlist = (await http.get(f"{base}/index.m3u8")).text
        init_uri = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', playlist)[-1]
        segments = re.findall(r"^(seg\d+\.m4s)$", playlist, re.M)
        if seen is None:
            seen = set(segments)  # start at the live edge, as a player joining now
        for uri in segments:
            if uri in seen:
                continue
            seen.add(uri)
            if init_uri not in inits:
                inits[init_uri] = (await http.get(f"{base}/{init_uri}")).content
            body = (await http.get(f"{base}/{uri}")).content
            delays += stamps(inits[init_uri], body, epoch, time.time())
        await asyncio.sleep(1.0)  # half the target duration
    return delays


def summary(delays: list[float]) -> dict[str, float | int]:
    if not delays:
        return {"frames": 0}
    ordered = sorted(delays)
    return {
        "frames": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


async def run(seconds: float) -> dict[str, object]:
    async with scratch_database() as url:
        return await _run(url, seconds)


async def _run(url: str, seconds: float) -> dict[str, object]:
    media = Path(tempfile.mkdtemp(prefix="nchat-latency-"))
    settings = Settings(DATABASE_URL=url, NCHAT_MEDIA_DIR=media / "live", STREAM_RECORDING_ENABLED=False,
                        NCHAT_RTMP_PORT=0, NCHAT_PUBLIC_URL="http://bench")
    runtime = Runtime(settings)
    try:
        await runtime.start()
        db = await asyncpg.connect(url)
        row = await bench_stream(db, "720p")
        await db.close()
        stream_id, key = str(row["id"]), row["stream_key"]
        transport = httpx.ASGITransport(app=create_app(runtime=runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=30) as http:
            epoch = time.time()
            client = WhipClient(http, stream_id, key, SyntheticVideo(1280, 720, 30, stamp=True, epoch=epoch))
            response = await client.start()
            assert response.status_code == 201, response.text
            for _ in range(150):
                if (await http.get(f"/hls/{stream_id}/master.m3u8")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.5)
            base = f"/hls/{stream_id}/{RENDITION}"
            until = time.time() + seconds
            ll, plain = await asyncio.gather(
                ll_player(http, base, epoch, until), plain_player(http, base, epoch, until)
            )
            speed = runtime.media.streams[stream_id].pipeline.stats.speed if runtime.media else None
            await client.stop()
        return {"rendition": RENDITION, "seconds": seconds, "ll_hls": summary(ll), "hls": summary(plain),
                "encoder_speed": round(speed, 2) if speed else None}
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds)), indent=2))


if __name__ == "__main__":
    main()
