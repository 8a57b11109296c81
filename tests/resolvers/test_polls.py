"""Live polls (issue 18, migration 0015): who creates and runs them, one vote per viewer (changeable while
open), closing (by hand and by duration), counts the server's, votes private to voter and broadcaster;
the same rules on the domain operations, the table API and the websocket subscription."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from nchat_live.auth import Claims
from nchat_live.config import Settings
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import polls
from nchat_live.resolvers.scheduler import StreamScheduler
from tests.graphql.conftest import GQL, app, client, code, data  # noqa: F401 - fixtures
from tests.subscriptions.conftest import open_socket, recv_json, serve
from tests.support import World, set_live

from .conftest import Clock, Events


@pytest.fixture
def gql(client: Any, world: World) -> GQL:  # noqa: F811
    return GQL(client, world)


async def create(db: Database, user: str, stream: str, **kw: Any) -> dict[str, Any]:
    async with db.session(Claims.user(user)) as s:
        return await polls.create_poll(s, stream, kw.pop("question", "Best?"), kw.pop("options", ["a", "b", "c"]),
                                       **kw)


async def vote(db: Database, user: str, poll: str, choices: list[int], **kw: Any) -> dict[str, Any]:
    async with db.session(Claims.user(user)) as s:
        return await polls.vote(s, poll, choices, **kw)


async def refused(coro: Any) -> str:
    with pytest.raises(NchatError) as info:
        await coro
    return info.value.code


async def test_managers_create_on_a_live_stream_viewers_vote_and_change(db: Database, world: World) -> None:
    assert await refused(create(db, world.alice, world.public_stream)) == "stream-not-live"
    await set_live(db, world.public_stream)
    assert await refused(create(db, world.bob, world.public_stream)) == "permission-error"
    poll = await create(db, world.mod, world.public_stream)
    assert poll["status"] == "open" and poll["vote_counts"] == [0, 0, 0]
    assert (await vote(db, world.bob, poll["id"], [1]))["vote_counts"] == [0, 1, 0]
    assert (await vote(db, world.carol, poll["id"], [1]))["vote_counts"] == [0, 2, 0]
    changed = await vote(db, world.bob, poll["id"], [2])
    assert changed["vote_counts"] == [0, 1, 1] and changed["voters"] == 2
    assert await refused(vote(db, world.bob, poll["id"], [0, 1])) == "invalid-choice"
    assert await refused(vote(db, world.bob, poll["id"], [3])) == "invalid-choice"
    async with db.session(Claims.user(world.alice)) as s:
        closed = await polls.set_poll_status(s, poll["id"], "closed")
    assert closed["status"] == "closed"
    assert await refused(vote(db, world.carol, poll["id"], [0])) == "poll-closed"
    async with db.session(Claims.anonymous()) as s:  # the final results stay with the stream
        assert (await polls.polls(s, world.public_stream))[0]["vote_counts"] == [0, 1, 1]


@pytest.mark.parametrize(("options", "extra"), [(["only"], {}), ([str(i) for i in range(11)], {}),
                                                (["a", "A"], {}), (["a", "b"], {"duration_seconds": 1})])
async def test_bad_polls_are_refused(db: Database, world: World, options: list[str], extra: dict[str, Any]) -> None:
    await set_live(db, world.public_stream)
    assert await refused(create(db, world.alice, world.public_stream, options=options, **extra)) == "validation-failed"


async def test_multiple_choice_and_duration_close(db: Database, world: World, clock: Clock) -> None:
    await set_live(db, world.public_stream)
    poll = await create(db, world.alice, world.public_stream, allow_multiple=True, duration_seconds=30,
                        now=clock.now)
    assert (await vote(db, world.bob, poll["id"], [0, 2], now=clock.now))["vote_counts"] == [1, 0, 1]
    assert await refused(vote(db, world.bob, poll["id"], [0, 0], now=clock.now)) == "invalid-choice"
    clock.advance(31)
    assert await refused(vote(db, world.carol, poll["id"], [1], now=clock.now)) == "poll-closed"
    async with db.session(Claims.user(world.bob)) as s:
        listed = await polls.polls(s, world.public_stream, now=clock.now)
    assert listed[0]["status"] == "closed" and listed[0]["closed_at"] == poll["closes_at"]


async def test_votes_are_private_to_the_voter_and_the_broadcaster(db: Database, world: World) -> None:
    await set_live(db, world.public_stream)
    poll = await create(db, world.alice, world.public_stream)
    await vote(db, world.bob, poll["id"], [0])
    await vote(db, world.carol, poll["id"], [1])
    async with db.session(Claims.user(world.alice)) as s:
        assert len(await polls.poll_votes(s, poll["id"])) == 2
    async with db.session(Claims.user(world.carol)) as s:
        assert [v["user_id"] for v in await polls.poll_votes(s, poll["id"])] == [world.carol]
    async with db.session(Claims.user(world.mod)) as s:  # a channel moderator runs polls, but reads no votes
        assert await polls.poll_votes(s, poll["id"]) == []


VOTE = """mutation($o: nchat_stream_poll_votes_insert_input!) { insert_nchat_stream_poll_votes_one(object: $o) {
  poll_id choices } }"""


async def test_the_table_api_obeys_the_same_rules(db: Database, world: World, gql: GQL) -> None:
    await set_live(db, world.public_stream)
    made = await gql("""mutation($s: uuid!) { insert_nchat_stream_polls_one(object: {stream_id: $s, question: "Q?",
      options: ["x", "y"], status: "open", vote_counts: [100, 0]}) { id } }""", {"s": world.public_stream},
                     as_="alice")
    assert "errors" in made  # status and counts are not columns a request role may write
    poll = data(await gql("""mutation($s: uuid!) { insert_nchat_stream_polls_one(object: {stream_id: $s,
      question: "Q?", options: ["x", "y"]}) { id status vote_counts } }""", {"s": world.public_stream}, as_="alice"))
    pid = poll["insert_nchat_stream_polls_one"]["id"]
    assert poll["insert_nchat_stream_polls_one"]["status"] == "draft"
    assert code(await gql("""mutation($s: uuid!) { insert_nchat_stream_polls_one(object: {stream_id: $s,
      question: "Q?", options: ["x", "y"]}) { id } }""", {"s": world.public_stream}, as_="bob")) == "permission-error"
    assert code(await gql(VOTE, {"o": {"poll_id": pid, "choices": [0]}}, as_="bob")) == "poll-closed"  # a draft
    async with db.session(Claims.user(world.alice)) as s:
        await polls.set_poll_status(s, pid, "open")
    assert data(await gql(VOTE, {"o": {"poll_id": pid, "choices": [0]}}, as_="bob"))
    assert code(await gql(VOTE, {"o": {"poll_id": pid, "choices": [1]}}, as_="bob")) == "constraint-violation"
    assert code(await gql(VOTE, {"o": {"poll_id": pid, "user_id": world.carol, "choices": [1]}},
                          as_="bob")) == "permission-error"
    assert code(await gql(VOTE, {"o": {"poll_id": pid, "choices": [0, 1]}}, as_="carol")) == "invalid-choice"
    got = await gql("""mutation($p: uuid!) { update_nchat_stream_polls(where: {id: {_eq: $p}},
      _set: {voters: 0}) { affected_rows } }""", {"p": pid}, as_="alice")
    assert "errors" in got  # counts are the server's
    seen = data(await gql("""query($p: uuid!) { nchat_stream_poll_votes(where: {poll_id: {_eq: $p}}) { user_id } }""",
                          {"p": pid}, as_="carol"))
    assert seen["nchat_stream_poll_votes"] == []
    seen = data(await gql("""query($p: uuid!) { nchat_stream_poll_votes(where: {poll_id: {_eq: $p}}) { user_id } }""",
                          {"p": pid}, as_="alice"))
    assert [v["user_id"] for v in seen["nchat_stream_poll_votes"]] == [world.bob]
    async with db.session(Claims.service()) as s:
        assert await s.fetchval("SELECT vote_counts FROM nchat_stream_polls WHERE id = $1", pid) == [1, 0]


RESULTS = "subscription($s: ID!) { pollResults(streamId: $s) { id voteCounts voters status } }"
CREATE = """mutation($s: ID!) { createPoll(streamId: $s, question: "Which?", options: ["a", "b"]) { id } }"""
VOTE_OP = "mutation($p: ID!, $c: [Int!]!) { votePoll(pollId: $p, choices: $c) { voteCounts } }"


async def test_results_stream_to_everyone_batched_over_the_websocket(db: Database, world: World,
                                                                     settings: Settings) -> None:
    await set_live(db, world.public_stream)
    async with serve(settings) as server:
        viewer = await open_socket(server.url(), None)
        voters = [await open_socket(server.url(), world.token(u)) for u in (world.alice, world.bob, world.carol)]
        try:
            await viewer.send(json.dumps({"type": "subscribe", "id": "r",
                                          "payload": {"query": RESULTS, "variables": {"s": world.public_stream}}}))
            assert (await recv_json(viewer))["payload"]["data"]["pollResults"] == []
            alice = voters[0]
            await alice.send(json.dumps({"type": "subscribe", "id": "c", "payload": {
                "query": CREATE, "variables": {"s": world.public_stream}}}))
            pid = (await recv_json(alice))["payload"]["data"]["createPoll"]["id"]
            started = time.monotonic()
            for n, ws in enumerate(voters[1:]):
                await ws.send(json.dumps({"type": "subscribe", "id": "v", "payload": {
                    "query": VOTE_OP, "variables": {"p": pid, "c": [n]}}}))
                assert (await recv_json(ws))["type"] == "next"
            batches: list[list[dict[str, Any]]] = []
            while not batches or batches[-1][0]["voters"] < 2:
                batches.append((await recv_json(viewer))["payload"]["data"]["pollResults"])
            assert batches[-1] == [{"id": pid, "voteCounts": [1, 1], "voters": 2, "status": "open"}]
            assert len(batches) <= 3 and time.monotonic() - started < 5
        finally:
            for ws in (viewer, *voters):
                await ws.close()
            await asyncio.sleep(0)


async def test_the_scheduler_closes_a_poll_when_its_time_is_up(db: Database, world: World, clock: Clock,
                                                               events: Events) -> None:
    await set_live(db, world.public_stream)
    poll = await create(db, world.alice, world.public_stream, duration_seconds=10, now=clock.now)
    scheduler = StreamScheduler(db)
    await scheduler.run_once(clock.advance(5))
    assert not [e for e in events.of("poll.results") if e["id"] == poll["id"] and e["status"] == "closed"]
    assert (await scheduler.run_once(clock.advance(6))).closed_polls >= 1  # (other tests' polls may be due too)
    final = [e for e in events.of("poll.results") if e["id"] == poll["id"]][-1]
    assert final["status"] == "closed" and final["vote_counts"] == [0, 0, 0]
