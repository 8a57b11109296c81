"""Guest-speaker end-to-end helpers shared by the media tests: the GraphQL acts of the broadcaster and the
guest over the app's HTTP client, and waits on the program as HLS (or any decoded picture) shows it."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np

from nchat_live.auth import Claims
from tests.support import World

from .compose_support import colour_at, near
from .media_server import Server

INVITE = "mutation($s: ID!, $u: ID!) { inviteGuest(streamId: $s, userId: $u) { id } }"
RESPOND = "mutation($g: ID!) { respondGuestInvitation(guestId: $g, accept: true) { id status } }"
REMOVE = "mutation($g: ID!) { removeGuest(guestId: $g) { id status } }"
LAYOUT = ("mutation($s: ID!, $l: String!, $f: ID) { setProgramLayout(streamId: $s, layout: $l, focusGuestId: $f) "
          "{ id } }")
MUTE = "mutation($g: ID!, $m: Boolean!) { setGuestMuted(guestId: $g, muted: $m) { id muted } }"
TOKEN = "mutation($s: ID!) { guestPublishToken(streamId: $s) { token whipUrl } }"

# The host sends 640x360 (one 360p rendition: the program is 640x360); the guest a smaller 320x180.
LEFT, RIGHT, CENTRE, BAR = (160, 180), (480, 180), (320, 180), (160, 30)


async def gql(server: Server, world: World, user: str, query: str, **variables: Any) -> dict[str, Any]:
    response = await server.http.post("/v1/graphql", json={"query": query, "variables": variables},
                                      headers={"Authorization": f"Bearer {world.token(user)}"})
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def newest_segment(server: Server, stream: str,
                         kind: str = "video") -> tuple[int, list[av.VideoFrame]] | tuple[int, np.ndarray] | None:
    """(media sequence number, decoded video frames or audio samples) of the newest complete segment of the
    top rendition."""
    master = await server.http.get(f"/hls/{stream}/master.m3u8")
    if master.status_code != 200:
        return None
    rendition = re.findall(r"^([^#\s][^\n]*)/index\.m3u8$", master.text, re.M)[0]
    playlist = (await server.http.get(f"/hls/{stream}/{rendition}/index.m3u8")).text
    segments = re.findall(r"#EXTINF:[^\n]*\n(seg(\d+)\.m4s)", playlist)
    if not segments:
        return None
    uri, msn = segments[-1]
    init = await server.http.get(f"/hls/{stream}/{rendition}/init.mp4")
    data = await server.http.get(f"/hls/{stream}/{rendition}/{uri}")
    assert init.status_code == data.status_code == 200
    with av.open(io.BytesIO(init.content + data.content), mode="r") as container:
        if kind == "audio":
            return int(msn), np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)])
        frames = [frame for frame in container.decode(video=0)]
    return int(msn), frames


async def program_shows(server: Server, stream: str, expected: dict[tuple[int, int], tuple[int, int, int]],
                        what: str, seconds: float = 25) -> None:
    """Wait until a whole new segment shows `expected` (point -> colour) in every one of its frames."""
    await wait_program(server, stream, lambda frame: all(
        near(colour_at(frame, x, y), colour) for (x, y), colour in expected.items()), what, seconds)


async def wait_program(server: Server, stream: str, check: Callable[[av.VideoFrame], bool], what: str,
                       seconds: float = 25) -> None:
    deadline = time.monotonic() + seconds
    seen: int | None = None
    last = "no segment yet"
    while time.monotonic() < deadline:
        found = await newest_segment(server, stream)
        if found is not None and found[0] != seen:
            seen, frames = found[0], found[1]
            assert isinstance(frames, list)
            if frames and all(check(frame) for frame in frames):
                return
            sample = frames[-1] if frames else None
            last = (f"segment {seen}: {len(frames)} frames; last frame " +
                    (", ".join(f"{p}={colour_at(sample, *p)}" for p in (LEFT, RIGHT, BAR)) if sample else "none"))
        await asyncio.sleep(0.3)
    raise AssertionError(f"the program never showed {what}; {last}")


async def accepted_guest(server: Server, world: World, stream: str, layout: str = "side_by_side") -> str:
    """bob invited by alice and accepted on `stream`, the program in `layout`; the guest's id."""
    gid: str = (await gql(server, world, world.alice, INVITE, s=stream, u=world.bob))["inviteGuest"]["id"]
    await gql(server, world, world.bob, RESPOND, g=gid)
    await gql(server, world, world.alice, LAYOUT, s=stream, l=layout, f=None)
    return gid


async def guest_token(server: Server, world: World, stream: str) -> str:
    data = await gql(server, world, world.bob, TOKEN, s=stream)
    assert data["guestPublishToken"]["whipUrl"].endswith(f"/whip/{stream}")
    token: str = data["guestPublishToken"]["token"]
    return token


async def wait_until(condition: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_until_ok(server: Server, url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while (await server.http.get(url)).status_code != 200:
        assert time.monotonic() < deadline, f"{url} never answered 200"
        await asyncio.sleep(0.2)


async def wait_live(server: Server, stream: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        async with server.runtime.database.session(Claims.service()) as session:
            status = await session.fetchval("SELECT status FROM nchat_streams WHERE id = $1", stream)
        if status == "live":
            return
        assert time.monotonic() < deadline, f"stream {stream} is {status}, not live"
        await asyncio.sleep(0.2)


def shows(frame: av.VideoFrame, expected: dict[tuple[int, int], tuple[int, int, int]]) -> bool:
    """Whether `frame` has each colour at its point (points on the 640x360 program, scaled to the frame)."""
    return all(near(colour_at(frame, x * frame.width // 640, y * frame.height // 360), colour)
               for (x, y), colour in expected.items())


async def track_shows(track: Any, expected: dict[tuple[int, int], tuple[int, int, int]], what: str,
                      seconds: float = 20, in_a_row: int = 5) -> None:
    """Wait until `in_a_row` consecutive frames received on an aiortc track (a WHEP viewer's) show `expected`."""
    deadline = time.monotonic() + seconds
    run, last = 0, "no frame yet"
    while run < in_a_row:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the track never showed {what}; {last}")
        frame = await asyncio.wait_for(track.recv(), left)
        run = run + 1 if shows(frame, expected) else 0
        last = f"last frame {frame.width}x{frame.height}: " + ", ".join(
            f"{p}={colour_at(frame, p[0] * frame.width // 640, p[1] * frame.height // 360)}" for p in expected)
