"""WHEP glass-to-glass latency and how many WHEP viewers one process holds.

The publisher (aiortc over WHIP, `--size` at 30 fps) draws its wall-clock send time into every frame;
1. latency: one aiortc WHEP viewer decodes the relayed video and reads the stamp back from each frame;
   p50/p95 of (receive time - stamp), against the same run's LL-HLS edge figure in bench/media_latency.py;
2. capacity: viewers are added in steps (1, 2, 4, 8, ...) for `--step-seconds` each; the ramp's viewers
   do not decode (aiortc's decoder is replaced by one that drops the frame, so the figure is the
   server's cost: one shared encode, then RTP packetization + SRTP per viewer); per step it prints the
   process CPU (cores), the relay's encoded fps and the median RTP packet rate each viewer received, and stops
   when a viewer gets < 80 % of the 1-viewer packet rate or the process uses every core;
3. audio: the publisher sends a tone; `--audio-viewers` viewers (not decoding) that offer video only, then
   as many that offer audio too, alternating twice in the same run: process CPU of each, the relay's Opus
   encode time (once per stream) and what is left per audio viewer (RTP packetization + SRTP).

Needs PostgreSQL (NCHAT_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres): a scratch
database is created and dropped. Everything (publisher, server, viewers) runs in this one process.

    .venv/bin/python bench/whep_latency.py [--seconds 5] [--size 640x360] [--max-viewers 64] [--audio-viewers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiortc.rtcrtpreceiver
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scratch import bench_stream, scratch_database
from tests.media.media_client import SyntheticVideo, WhipClient, read_stamp
from tests.media.whep_client import WhepViewer, whep_endpoint

from nchat_live.app import create_app
from nchat_live.config import Settings
from nchat_live.media.egress.whep import WhepEndpoint
from nchat_live.runtime import Runtime


class _DropDecoder:
    """Stands in for aiortc's H.264 decoder in ramp viewers: the frame arrives, nothing is decoded."""

    def decode(self, encoded_frame: Any) -> list[Any]:
        return []


def _summary(delays: list[float]) -> dict[str, Any]:
    if not delays:
        return {"frames": 0}
    ordered = sorted(delays)
    return {"frames": len(ordered), "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)}


async def latency(http: httpx.AsyncClient, stream_id: str, epoch: float, seconds: float,
                  source_width: int) -> dict[str, Any]:
    viewer = WhepViewer(http, stream_id)
    started = time.monotonic()
    response = await viewer.start()
    assert response.status_code == 201, response.text
    delays: list[float] = []
    first: float | None = None
    try:
        while viewer.video is None:  # noqa: ASYNC110 - aiortc's "track" event sets it; polling is enough here
            await asyncio.sleep(0.01)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            frame = await asyncio.wait_for(viewer.video.recv(), 5)
            now = time.time()
            if first is None:
                first = time.monotonic() - started
            delays.append(now - epoch - read_stamp(frame, round(1280 * frame.width / source_width)) / 1000)  # type: ignore[arg-type]
    finally:
        await viewer.stop()
    return _summary(delays[5:]) | {"first_frame_s": round(first or -1, 3)}


async def packets_received(viewer: WhepViewer, kind: str = "video") -> int:
    report = await viewer.pc.getStats()
    return sum(s.packetsReceived or 0 for s in report.values() if s.type == "inbound-rtp" and s.kind == kind)


def drop_decoding() -> None:
    aiortc.rtcrtpreceiver.get_decoder = lambda codec: _DropDecoder()  # type: ignore[assignment,return-value]


async def ramp(http: httpx.AsyncClient, endpoint: WhepEndpoint, stream_id: str, step_seconds: float,
               max_viewers: int) -> list[dict[str, Any]]:
    drop_decoding()
    viewers: list[WhepViewer] = []
    steps: list[dict[str, Any]] = []
    baseline: float | None = None
    count = 1
    try:
        while count <= max_viewers:
            while len(viewers) < count:
                viewer = WhepViewer(http, stream_id, audio=False)
                response = await viewer.start()
                if response.status_code != 201:
                    steps.append({"viewers": len(viewers) + 1, "refused": response.status_code})
                    return steps
                viewers.append(viewer)
            await asyncio.sleep(1.0)  # connect, first keyframe
            before = [await packets_received(v) for v in viewers]
            cpu0, wall0 = time.process_time(), time.monotonic()
            relay = endpoint.relays.relays.get(stream_id)
            enc0 = relay.frames_encoded if relay else 0
            await asyncio.sleep(step_seconds)
            wall = time.monotonic() - wall0
            cpu = (time.process_time() - cpu0) / wall
            after = [await packets_received(v) for v in viewers]
            kbps = statistics.median((a - b) / wall for a, b in zip(after, before, strict=True))
            enc_fps = ((relay.frames_encoded - enc0) / wall) if relay else 0.0
            baseline = baseline or kbps
            step = {"viewers": count, "process_cpu_cores": round(cpu, 2), "relay_encoded_fps": round(enc_fps, 1),
                    "median_viewer_packets_per_s": round(kbps),
                    "vs_1_viewer": round(kbps / baseline, 2) if baseline else None}
            steps.append(step)
            print(json.dumps(step), file=sys.stderr)
            if kbps < 0.8 * baseline or cpu > (os.cpu_count() or 1) * 0.95:
                break
            count *= 2
    finally:
        for viewer in viewers:
            await viewer.stop()
    return steps


async def audio_cost(http: httpx.AsyncClient, endpoint: WhepEndpoint, stream_id: str, count: int,
                     seconds: float) -> dict[str, Any]:
    """`count` viewers offering video only, then `count` offering audio too, twice over, in this run."""
    drop_decoding()
    rounds: list[dict[str, Any]] = []
    for audio in (False, True, False, True):
        viewers = [WhepViewer(http, stream_id, audio=audio) for _ in range(count)]
        try:
            for viewer in viewers:
                assert (await viewer.start()).status_code == 201
            await asyncio.sleep(1.5)  # connected, first keyframe, Opus running
            relay = endpoint.relays.relays[stream_id]
            enc0, opus0, packets0 = relay.encode_seconds, relay.audio_encode_seconds, relay.audio_packets
            received0 = [await packets_received(v, "audio") for v in viewers]
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            wall = time.monotonic() - wall0
            cpu = (time.process_time() - cpu0) / wall
            received = [await packets_received(v, "audio") for v in viewers]
            rounds.append({"audio": audio, "process_cpu_cores": round(cpu, 3),
                           "h264_encode_cores": round((relay.encode_seconds - enc0) / wall, 3),
                           "opus_encode_cores": round((relay.audio_encode_seconds - opus0) / wall, 4),
                           "opus_packets_per_s": round((relay.audio_packets - packets0) / wall, 1),
                           "median_viewer_audio_packets_per_s": round(statistics.median(
                               (b - a) / wall for a, b in zip(received0, received, strict=True)), 1)})
            print(json.dumps(rounds[-1]), file=sys.stderr)
        finally:
            for viewer in viewers:
                await viewer.stop()
        await asyncio.sleep(0.5)
    without = statistics.mean(r["process_cpu_cores"] for r in rounds if not r["audio"])
    with_audio = statistics.mean(r["process_cpu_cores"] for r in rounds if r["audio"])
    opus = statistics.mean(r["opus_encode_cores"] for r in rounds if r["audio"])
    return {"viewers": count, "rounds": rounds, "cpu_cores_without_audio": round(without, 3),
            "cpu_cores_with_audio": round(with_audio, 3), "with_vs_without": round(with_audio / without, 3),
            "added_cores_per_stream_opus_encode": round(opus, 4),
            "added_cores_per_audio_viewer": round((with_audio - without - opus) / count, 4)}


async def run(seconds: float, size: tuple[int, int], step_seconds: float, max_viewers: int,
              audio_viewers: int) -> dict[str, Any]:
    async with scratch_database() as url:
        return await _run(url, seconds, size, step_seconds, max_viewers, audio_viewers)


async def _run(url: str, seconds: float, size: tuple[int, int], step_seconds: float,
               max_viewers: int, audio_viewers: int) -> dict[str, Any]:
    media = Path(tempfile.mkdtemp(prefix="nchat-whep-"))
    settings = Settings(DATABASE_URL=url, NCHAT_MEDIA_DIR=media / "live", STREAM_RECORDING_ENABLED=False,
                        NCHAT_RTMP_PORT=0, NCHAT_PUBLIC_URL="http://bench", NCHAT_WHEP_MAX_VIEWERS=10_000,
                        NCHAT_WHEP_MAX_SESSIONS_PER_CLIENT=10_000)
    runtime = Runtime(settings)
    try:
        await runtime.start()
        db = await asyncpg.connect(url)
        row = await bench_stream(db, "360p")
        stream_id, key = str(row["id"]), row["stream_key"]
        app = create_app(runtime=runtime)
        endpoint = whep_endpoint(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=30) as http:
            epoch = time.time()
            client = WhipClient(http, stream_id, key, SyntheticVideo(*size, 30, stamp=True, epoch=epoch),
                                audio=True)
            assert (await client.start()).status_code == 201
            for _ in range(100):
                if await db.fetchval("SELECT status FROM nchat_streams WHERE id = $1", row["id"]) == "live":
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            result: dict[str, Any] = {"source": f"{size[0]}x{size[1]}@30", "cpus": os.cpu_count(),
                                      "whep": await latency(http, stream_id, epoch, seconds, size[0])}
            print(json.dumps(result), file=sys.stderr)
            result["capacity"] = await ramp(http, endpoint, stream_id, step_seconds, max_viewers)
            if audio_viewers:
                result["audio"] = await audio_cost(http, endpoint, stream_id, audio_viewers, step_seconds)
            await client.stop()
        await db.close()
        return result
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--step-seconds", type=float, default=3)
    parser.add_argument("--max-viewers", type=int, default=64)
    parser.add_argument("--audio-viewers", type=int, default=8, help="0: no audio phase")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(json.dumps(asyncio.run(run(args.seconds, (width, height), args.step_seconds, args.max_viewers,
                                     args.audio_viewers)), indent=2))


if __name__ == "__main__":
    main()
