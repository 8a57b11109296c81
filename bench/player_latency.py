"""Glass-to-glass latency in a real player: the console publishes from Chromium's fake camera over WHIP,
a second page plays the stream with hls.js in low-latency mode.

Debian's Chromium (/usr/bin/chromium, never a downloaded browser) driven by Playwright. The app runs
under uvicorn on a free port with media on, on a scratch database (NCHAT_TEST_PG, default
postgresql://postgres@127.0.0.1:5432/postgres; created and dropped).

Measured, every 200 ms while playing:
- glass-to-glass: now - PROGRAM-DATE-TIME of the frame on screen (hls.js `playingDate`; the server dates a
  frame by its arrival, so the capture and WebRTC path, ~50-100 ms on loopback, is not counted);
- hls.js's own `latency` (distance to the live edge) and its target;
- start-up (player created -> first frame playing; and Go live -> master playlist), stalls (`waiting` after
  playing started), hls.js errors (levelEmptyError and others), renditions offered and played;
- the sender: what Chromium's WebRTC encoder sends (size, frame rate, bit rate, quality limitation).

    .venv/bin/python bench/player_latency.py [--seconds 20] [--preset 720p] [--player hls]

`--player whep` plays over WebRTC (WHEP, POST /whep/{id}) where the server has it; the latency is then
Chromium's own playout estimate (jitter buffer + decode, no PDT exists in WebRTC) plus the network RTT/2.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scratch import bench_user_and_channel, scratch_database
from tests.support import base_url, loopback_socket, serve_app_in_thread

from nchat_live.app import create_app
from nchat_live.auth import mint_token
from nchat_live.config import Settings

CHROMIUM = "/usr/bin/chromium"
HLS_JS = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
]
# The player page is answered by the browser's request interception at the server's own origin (a page
# elsewhere would be refused loopback fetches by Chromium's Private Network Access rules).
PLAYER_PATH = "/__bench_player"

# Keeps every RTCPeerConnection the console makes, so the bench can read the sender's stats.
SENDER_HOOK = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

SENDER_STATS = """
async () => {
  const pc = (window.__pcs || []).filter((p) => p.connectionState === "connected").pop();
  if (!pc) return null;
  const stats = await pc.getStats();
  let out = null;
  stats.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") out = {
      width: s.frameWidth, height: s.frameHeight, fps: s.framesPerSecond, bytes: s.bytesSent,
      limitation: s.qualityLimitationReason, target_kbps: s.targetBitrate ? Math.round(s.targetBitrate / 1000) : null,
      at: performance.now(),
    };
  });
  return out;
}
"""

PLAYER_HTML = """<!doctype html><html><body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline style="width:640px"></video>
<script src="/__bench_player/hls.min.js"></script>
<script>
const video = document.getElementById("v");
const bench = window.bench = { samples: [], errors: [], stalls: 0, waiting: false, started: null, created: 0,
  levels: [], played: new Set(), mode: "", target: null };
video.addEventListener("playing", () => { if (bench.started === null) bench.started = performance.now();
  bench.waiting = false; });
video.addEventListener("waiting", () => { if (bench.started !== null && !bench.waiting) { bench.stalls++;
  bench.waiting = true;
  bench.errors.push({ details: "waiting", fatal: false, t: performance.now() - bench.created }); } });
window.startHls = (url) => {
  bench.mode = "hls"; bench.created = performance.now();
  const hls = window.hls = new Hls({ lowLatencyMode: true, backBufferLength: 10 });
  hls.on(Hls.Events.ERROR, (_, d) => bench.errors.push({ details: d.details, fatal: d.fatal,
    t: performance.now() - bench.created }));
  hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => { bench.levels = d.levels.map((l) => l.height + "p"); });
  hls.on(Hls.Events.FRAG_CHANGED, (_, d) => {
    const l = hls.levels[d.frag.level]; if (l) bench.played.add(l.height + "p"); });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => undefined);
  setInterval(() => {
    if (bench.started === null || video.paused) return;
    const date = hls.playingDate;
    if (!date) return;
    const b = video.buffered;
    bench.samples.push({ g2g: (Date.now() - date.getTime()) / 1000, edge: hls.latency, target: hls.targetLatency,
      height: video.videoHeight, ahead: b.length ? b.end(b.length - 1) - video.currentTime : 0,
      t: performance.now() - bench.created });
  }, 200);
};
window.startWhep = async (url) => {
  bench.mode = "whep"; bench.created = performance.now();
  const pc = window.pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (e) => { if (!video.srcObject) video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch(() => undefined); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === "complete") r(); else
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()); });
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp });
  if (res.status !== 201) { bench.errors.push({ details: "whep " + res.status, fatal: true, t: 0 }); return; }
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  let last = null;
  setInterval(async () => {
    if (bench.started === null) return;
    const stats = await pc.getStats();
    let rtt = 0, inbound = null;
    stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime)
      rtt = s.currentRoundTripTime; if (s.type === "inbound-rtp" && s.kind === "video") inbound = s; });
    if (!inbound) return;
    if (last && inbound.jitterBufferEmittedCount > last.jitterBufferEmittedCount) {
      const jb = (inbound.jitterBufferDelay - last.jitterBufferDelay)
        / (inbound.jitterBufferEmittedCount - last.jitterBufferEmittedCount);
      const decode = inbound.framesDecoded ? inbound.totalDecodeTime / inbound.framesDecoded : 0;
      bench.samples.push({ g2g: jb + decode + rtt / 2, edge: null, target: null, height: video.videoHeight });
      bench.played.add(video.videoHeight + "p");
    }
    last = inbound;
  }, 200);
};
</script></body></html>"""


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def make_world(url: str) -> tuple[str, str]:
    db = await asyncpg.connect(url)
    try:
        user, channel = await bench_user_and_channel(db)
        await db.execute("INSERT INTO nchat_channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner')",
                         channel, user)
    finally:
        await db.close()
    return str(user), str(channel)


async def go_live(page: Page, base: str, token: str, channel: str, preset: str) -> str:
    await page.goto(f"{base}/console")
    await page.get_by_label("Development token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_test_id("signed-in").wait_for()
    await page.get_by_label("Channel").select_option(channel)
    await page.get_by_label("Title", exact=True).fill("Latency bench")
    await page.get_by_label("Quality preset").select_option(preset)
    await page.get_by_role("button", name="Create stream").click()
    await page.wait_for_function("() => /^[0-9a-f-]{36}$/.test(document.querySelector('#stream-id')?.textContent"
                                 " ?.trim() || '')", timeout=15_000)
    stream_id = (await page.locator("#stream-id").text_content() or "").strip()
    await page.wait_for_function("() => !document.querySelector('#go-live').disabled", timeout=15_000)
    await page.get_by_role("button", name="Go live").click()
    return stream_id


def server_side(app: Any, stream_id: str) -> dict[str, Any]:
    """The pipeline's own view: encoder speed, drops, and how old the newest listed part is (now - the
    PROGRAM-DATE-TIME of its end): the part of the glass-to-glass time spent before a player sees it."""
    media = app.state.runtime.media
    live = media.streams.get(stream_id) if media is not None else None
    if live is None:
        return {}
    stats = live.pipeline.stats
    ages = {}
    for name, rendition in live.pipeline.packager.renditions.items():
        with live.pipeline.packager.lock:
            segment = rendition.segments[-1] if rendition.segments else None
            if segment is None:
                continue
            end = segment.program_date_time + timedelta(seconds=sum(p.duration for p in segment.parts))
        ages[name] = round((datetime.now(UTC) - end).total_seconds(), 3)
    return {"encoder_speed": round(stats.speed, 2), "frames_in": stats.frames_in,
            "frames_dropped": stats.frames_dropped, "source": f"{stats.source_width}x{stats.source_height}",
            "ladder": stats.renditions, "trimmed": stats.trimmed, "newest_part_age_s": ages}


async def measure(app: Any, base: str, token: str, channel: str, args: argparse.Namespace) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            console_context = await browser.new_context()
            await console_context.add_init_script(SENDER_HOOK)
            console = await console_context.new_page()
            clicked = time.monotonic()
            stream_id = await go_live(console, base, token, channel, args.preset)
            master_url = f"{base}/hls/{stream_id}/master.m3u8"
            player = await (await browser.new_context()).new_page()
            hls_js = HLS_JS.read_bytes()

            async def serve_player(route: Any) -> None:
                if route.request.url.endswith("/hls.min.js"):
                    await route.fulfill(body=hls_js, content_type="application/javascript")
                else:
                    await route.fulfill(body=PLAYER_HTML, content_type="text/html")

            await player.route(f"{base}{PLAYER_PATH}/**", serve_player)
            await player.goto(f"{base}{PLAYER_PATH}/")
            master_after = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = await player.evaluate("async (u) => (await fetch(u)).status", master_url)
                if status == 200:
                    master_after = time.monotonic() - clicked
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(args.join_after)
            if args.player == "whep":
                await player.evaluate("(u) => window.startWhep(u)", f"{base}/whep/{stream_id}")
            else:
                await player.evaluate("(u) => window.startHls(u)", master_url)
            senders: list[dict[str, Any]] = []
            server: dict[str, Any] = {}
            until = time.monotonic() + args.seconds + 10
            while time.monotonic() < until:
                await asyncio.sleep(1.0)
                sample = await console.evaluate(SENDER_STATS)
                server = server_side(app, stream_id) or server
                if sample:
                    senders.append(sample)
                started = await player.evaluate("() => window.bench.started !== null")
                if not started and time.monotonic() > until - args.seconds:
                    until = time.monotonic() + args.seconds  # count the seconds from the first frame
            bench = await player.evaluate(
                "() => ({ ...window.bench, played: [...window.bench.played], startup_ms: window.bench.started === null"
                " ? null : window.bench.started - window.bench.created })"
            )
        finally:
            await browser.close()
    samples = bench["samples"][5:]  # the first second is start-up
    if os.environ.get("BENCH_DEBUG") == "1":
        print(json.dumps({"errors": bench["errors"], "samples": bench["samples"][:40]}), file=sys.stderr)
    g2g = [s["g2g"] for s in samples]
    edge = [s["edge"] for s in samples if s["edge"] is not None]
    rates = []
    for a, b in itertools.pairwise(senders):
        if b["bytes"] and a["bytes"] and b["at"] > a["at"]:
            rates.append((b["bytes"] - a["bytes"]) * 8 / (b["at"] - a["at"]))  # kbit/s (ms clock)
    last = senders[-1] if senders else {}
    return {
        "player": args.player, "preset": args.preset, "seconds": args.seconds, "samples": len(g2g),
        "glass_to_glass_p50_s": pct(g2g, 0.5), "glass_to_glass_p95_s": pct(g2g, 0.95),
        "hls_js_edge_latency_p50_s": pct(edge, 0.5),
        "hls_js_target_latency_s": samples[-1]["target"] if samples else None,
        "startup_s": round(bench["startup_ms"] / 1000, 2) if bench["startup_ms"] is not None else None,
        "go_live_to_master_s": round(master_after, 2) if master_after is not None else None,
        "stalls": bench["stalls"],
        "errors": sorted({f"{e['details']}{' (fatal)' if e['fatal'] else ''}" for e in bench["errors"]}),
        "renditions_offered": bench["levels"], "renditions_played": sorted(bench["played"]),
        "server": server,
        "sender": {
            "size": f"{last.get('width')}x{last.get('height')}" if last else None,
            "fps": last.get("fps"), "limitation": last.get("limitation"),
            "kbps_p50": round(statistics.median(rates)) if rates else None,
            "kbps_first_s": round(rates[0]) if rates else None,
            "size_first": f"{senders[0].get('width')}x{senders[0].get('height')}" if senders else None,
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with scratch_database() as url:
        return await _run(url, args)


async def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    media = Path(tempfile.mkdtemp(prefix="nchat-player-"))
    sock = loopback_socket()
    settings = Settings(DATABASE_URL=url, NCHAT_MEDIA_DIR=media / "live", STREAM_RECORDING_ENABLED=False,
                        NCHAT_RTMP_PORT=0, NCHAT_PUBLIC_URL=base_url(sock))
    app = create_app(settings)
    with serve_app_in_thread(app, sock=sock) as base:
        user, channel = await make_world(url)
        token = mint_token(settings.jwt_secret, user, "user")
        return await measure(app, base, token, channel, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--preset", default="720p", choices=["1080p", "720p", "480p", "360p"])
    parser.add_argument("--player", default="hls", choices=["hls", "whep"])
    parser.add_argument("--join-after", type=float, default=0.0,
                        help="seconds between the master playlist appearing and the player starting")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
