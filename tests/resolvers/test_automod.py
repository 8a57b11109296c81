"""Auto-moderation (issue 18, migration 0015): every chat rule (blocked terms with their obfuscations, the
link filter, emote-only, minimum account age, hold) on every write path (domain operation, table API,
REST, websocket) with its code; held messages seen by their author and the moderators only, approved
into their original place or denied; rule changes readable by the channel's moderators only; the
moderation log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from nchat_live.auth import Claims
from nchat_live.db import Database
from nchat_live.errors import NchatError
from nchat_live.resolvers import automod, chat, moderation
from tests.graphql.conftest import GQL, app, client, code, data  # noqa: F401 - fixtures
from tests.subscriptions.conftest import Server, open_socket, recv_json, server  # noqa: F401 - fixtures
from tests.support import World, set_live

from .conftest import Events


@pytest.fixture
def gql(client: httpx.AsyncClient, world: World) -> GQL:  # noqa: F811
    return GQL(client, world)


async def as_owner(db: Database, world: World, work: Callable[[Any], Awaitable[Any]]) -> Any:
    async with db.session(Claims.user(world.alice)) as s:
        return await work(s)


# rule setup, a message it refuses (or holds), the expected code (or "held"), a message it lets through
RULES: dict[str, tuple[Callable[[Any, World], Awaitable[Any]], str, str, str]] = {
    "blocked-word": (lambda s, w: automod.add_blocked_term(s, w.public_channel, "badword"),
                     "what a B@DDD.W0RD, really", "blocked-term", "a badge word is fine"),
    "blocked-accents": (lambda s, w: automod.add_blocked_term(s, w.public_channel, "crème"),
                        "CREME brulee", "blocked-term", "cremes"),
    "blocked-separators": (lambda s, w: automod.add_blocked_term(s, w.public_channel, "spam"),
                           "buy s p 4 m now", "blocked-term", "spammer tools"),
    "blocked-pattern": (lambda s, w: automod.add_blocked_term(s, w.public_channel, r"\d{3}-\d{4}", is_pattern=True),
                        "call 555-1234", "blocked-term", "call me"),
    "link": (lambda s, w: automod.update_chat_settings(s, w.public_channel, automod.ChatSettings(
                 link_filter=True, allowed_domains=["example.com"])),
             "see https://evil.io/x", "link-not-allowed", "docs at docs.example.com/a and e.g. v1.2"),
    "emote-only": (lambda s, w: automod.update_chat_settings(s, w.public_channel, automod.ChatSettings(
                       emote_only=True)), "hello 🎉", "emote-only", "🎉🔥 ❤️"),
    "account-age": (lambda s, w: automod.update_chat_settings(s, w.public_channel, automod.ChatSettings(
                        min_account_age_seconds=3600)), "hi", "account-too-new", ""),
    "hold": (lambda s, w: automod.add_blocked_term(s, w.public_channel, "spoiler", action="hold"),
             "SP0ILER: he dies", "held", "no spoilers here"),
}

SEND = "mutation($s: ID!, $c: String!) { sendChatMessage(streamId: $s, content: $c) { id status } }"
INSERT = """mutation($s: uuid!, $c: String!) { insert_nchat_stream_chat_messages_one(object: {stream_id: $s,
  content: $c}) { id status } }"""


async def send_by(path: str, db: Database, world: World, gql: GQL, client: httpx.AsyncClient,  # noqa: F811
                  server: Server, content: str) -> tuple[str, str | None]:  # noqa: F811
    """Bob posts on the public stream by `path`; ("ok", status) or ("refused", code)."""
    if path == "domain":
        try:
            async with db.session(Claims.user(world.bob)) as s:
                return "ok", (await chat.send_chat_message(s, world.public_stream, content))["status"]
        except NchatError as exc:
            return "refused", exc.code
    if path == "table":
        got = await gql(INSERT, {"s": world.public_stream, "c": content}, as_="bob")
        if "errors" in got:
            return "refused", code(got)
        return "ok", got["data"]["insert_nchat_stream_chat_messages_one"]["status"]
    if path == "rest":
        r = await client.post(f"/api/streams/{world.public_stream}/chat", json={"content": content},
                              headers={"authorization": f"Bearer {world.token(world.bob)}"})
        return ("ok", r.json()["status"]) if r.status_code == 201 else ("refused", r.json()["error"]["code"])
    ws = await open_socket(server.url(), world.token(world.bob))
    try:
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {
            "query": SEND, "variables": {"s": world.public_stream, "c": content}}}))
        msg = await recv_json(ws)
    finally:
        await ws.close()
    if msg["payload"].get("errors"):
        return "refused", msg["payload"]["errors"][0]["extensions"]["code"]
    return "ok", msg["payload"]["data"]["sendChatMessage"]["status"]


@pytest.mark.parametrize("path", ["domain", "table", "rest", "websocket"])
@pytest.mark.parametrize("name", list(RULES))
async def test_every_rule_on_every_path(name: str, path: str, db: Database, world: World, gql: GQL,
                                        client: httpx.AsyncClient, server: Server) -> None:  # noqa: F811
    setup, bad, expected, good = RULES[name]
    await set_live(db, world.public_stream)
    await as_owner(db, world, lambda s: setup(s, world))
    got = await send_by(path, db, world, gql, client, server, bad)
    assert got == (("ok", "held") if expected == "held" else ("refused", expected))
    if good:
        assert await send_by(path, db, world, gql, client, server, good) == ("ok", "visible")
    # The stream's managers are exempt.
    async with db.session(Claims.user(world.mod)) as s:
        assert (await chat.send_chat_message(s, world.public_stream, bad))["status"] == "visible"


async def test_an_edit_obeys_the_rules_too(db: Database, world: World, gql: GQL) -> None:
    await set_live(db, world.public_stream)
    await as_owner(db, world, lambda s: automod.add_blocked_term(s, world.public_channel, "badword"))
    await as_owner(db, world, lambda s: automod.add_blocked_term(s, world.public_channel, "spoiler", action="hold"))
    mid = data(await gql(INSERT, {"s": world.public_stream, "c": "fine"}, as_="bob"))[
        "insert_nchat_stream_chat_messages_one"]["id"]
    edit = """mutation($m: uuid!, $c: String!) { update_nchat_stream_chat_messages_by_pk(pk_columns: {id: $m},
      _set: {content: $c}) { status } }"""
    assert code(await gql(edit, {"m": mid, "c": "badword"}, as_="bob")) == "blocked-term"
    assert data(await gql(edit, {"m": mid, "c": "spoiler!"}, as_="bob"))[
        "update_nchat_stream_chat_messages_by_pk"]["status"] == "held"
    assert code(await gql("""mutation($m: uuid!) { update_nchat_stream_chat_messages_by_pk(pk_columns: {id: $m},
      _set: {status: "visible"}) { status } }""", {"m": mid}, as_="bob")) == "validation-failed"


async def test_held_messages_are_seen_by_author_and_moderators_and_approved_in_place(
        db: Database, world: World, events: Events, gql: GQL) -> None:
    await set_live(db, world.public_stream)
    await as_owner(db, world, lambda s: automod.add_blocked_term(s, world.public_channel, "spoiler", action="hold"))
    async with db.session(Claims.user(world.bob)) as s:
        first = await chat.send_chat_message(s, world.public_stream, "spoiler one")
        second = await chat.send_chat_message(s, world.public_stream, "spoiler two")
    async with db.session(Claims.user(world.carol)) as s:
        await chat.send_chat_message(s, world.public_stream, "after")
    assert [e["id"] for e in events.of("chat.held")] == [first["id"], second["id"]]
    assert [e["content"] for e in events.of("chat.message")] == ["after"]

    async def history(user: str | None) -> list[tuple[str, str]]:
        claims = Claims.user(user) if user else Claims.anonymous()
        async with db.session(claims) as s:
            page = await chat.chat_history(s, world.public_stream)
        return [(m["content"], m["status"]) for m in page["messages"]]

    assert await history(None) == [("after", "visible")]
    assert await history(world.carol) == [("after", "visible")]
    assert await history(world.bob) == [("spoiler one", "held"), ("spoiler two", "held"), ("after", "visible")]
    seen = data(await gql("""query($s: uuid!) { nchat_stream_chat_messages(where: {stream_id: {_eq: $s}}) { content }
      }""", {"s": world.public_stream}, as_="carol"))
    assert [m["content"] for m in seen["nchat_stream_chat_messages"]] == ["after"]
    async with db.session(Claims.user(world.carol)) as s:
        with pytest.raises(NchatError) as info:
            await automod.review_message(s, first["id"], approve=True)
        assert info.value.code == "permission-error"
    async with db.session(Claims.user(world.mod)) as s:
        assert [m["id"] for m in await automod.held_messages(s, world.public_stream)] == [first["id"], second["id"]]
        approved = await automod.review_message(s, first["id"], approve=True)
        denied = await automod.review_message(s, second["id"], approve=False)
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.mod)) as s:
            await automod.review_message(s, second["id"], approve=True)
    assert info.value.code == "message-not-held"
    with pytest.raises(NchatError) as info:
        async with db.session(Claims.user(world.mod)) as s:
            await chat.pin_chat_message(s, second["id"])  # denied: its pin event would show it to everyone
    assert info.value.code == "message-not-visible"
    assert approved["status"] == "visible" and approved["created_at"] == first["created_at"]
    assert denied["status"] == "denied"
    assert events.of("chat.message")[-1]["id"] == first["id"]
    assert events.of("chat.denied")[-1]["id"] == second["id"]
    assert await history(world.carol) == [("spoiler one", "visible"), ("after", "visible")]  # its original place
    assert await history(world.bob) == [("spoiler one", "visible"), ("spoiler two", "denied"), ("after", "visible")]


async def test_rules_and_log_are_for_the_channels_moderators(db: Database, world: World, gql: GQL) -> None:
    await set_live(db, world.public_stream)
    term = await as_owner(db, world, lambda s: automod.add_blocked_term(s, world.public_channel, "badword"))
    for user in (world.bob, world.carol):
        async with db.session(Claims.user(user)) as s:
            for work in (lambda: automod.blocked_terms(s, world.public_channel),
                         lambda: automod.add_blocked_term(s, world.public_channel, "x"),
                         lambda: automod.moderation_log(s, world.public_channel)):
                with pytest.raises(NchatError) as info:
                    await work()
                assert info.value.code == "permission-error"
    for query in ("{ nchat_channel_blocked_terms { id } }", "{ nchat_moderation_log { id } }"):
        assert list(data(await gql(query, as_="bob")).values()) == [[]]
    assert code(await gql("""mutation($c: uuid!) { insert_nchat_channel_blocked_terms_one(object: {channel_id: $c,
      term: "x"}) { id } }""", {"c": world.public_channel}, as_="bob")) == "permission-error"
    assert code(await gql("""mutation($c: uuid!) { insert_nchat_channel_blocked_terms_one(object: {channel_id: $c,
      term: "(", is_pattern: true}) { id } }""", {"c": world.public_channel}, as_="mod")) == "invalid-pattern"
    assert "errors" in await gql("""mutation($c: uuid!) { insert_nchat_moderation_log_one(object: {channel_id: $c,
      action: "x"}) { id } }""", {"c": world.public_channel}, as_="alice")

    async with db.session(Claims.user(world.bob)) as s:
        message = await chat.send_chat_message(s, world.public_stream, "hello")
    async with db.session(Claims.user(world.mod)) as s:
        await chat.pin_chat_message(s, message["id"])
        await chat.delete_chat_message(s, message["id"])
        await moderation.timeout_user(s, world.public_stream, world.bob, 60)
        await moderation.unban_user(s, world.public_stream, world.bob)
        await automod.remove_blocked_term(s, term["id"])
        log = await automod.moderation_log(s, world.public_channel)
    assert [(e["action"], e["actor_id"]) for e in reversed(log)] == [
        ("term-added", world.alice), ("pin", world.mod), ("delete", world.mod), ("timeout", world.mod),
        ("unban", world.mod), ("term-removed", world.mod)]
    assert log[3]["target_user_id"] == world.bob and log[4]["target_message_id"] == message["id"]


async def mutate(server: Server, token: str, query: str, variables: dict[str, Any]) -> Any:  # noqa: F811
    ws = await open_socket(server.url(), token)
    try:
        await ws.send(json.dumps({"type": "subscribe", "id": "m", "payload": {"query": query, "variables": variables}}))
        msg = await recv_json(ws)
    finally:
        await ws.close()
    assert not msg["payload"].get("errors"), msg
    return msg["payload"]["data"]


EVENTS = "subscription($s: ID!) { chatEvents(streamId: $s) { type id content status } }"


async def test_held_events_reach_the_author_and_moderators_only(db: Database, world: World,
                                                                 server: Server) -> None:  # noqa: F811
    await set_live(db, world.public_stream)
    await as_owner(db, world, lambda s: automod.add_blocked_term(s, world.public_channel, "spoiler", action="hold"))
    sockets = {u: await open_socket(server.url(), world.token(getattr(world, u))) for u in ("bob", "carol", "mod")}
    try:
        for ws in sockets.values():
            await ws.send(json.dumps({"type": "subscribe", "id": "e", "payload": {
                "query": EVENTS, "variables": {"s": world.public_stream}}}))
        await asyncio.sleep(0.3)  # the feeds are listening
        # Through the server (its bus carries the events): the websocket path.
        held = await mutate(server, world.token(world.bob), SEND, {"s": world.public_stream,
                                                                  "c": "spoiler: it was him"})
        held = held["sendChatMessage"]
        await mutate(server, world.token(world.carol), SEND, {"s": world.public_stream, "c": "plain"})
        for user in ("bob", "mod"):
            got = (await recv_json(sockets[user]))["payload"]["data"]["chatEvents"]
            assert got == {"type": "HELD", "id": held["id"], "content": "spoiler: it was him", "status": "held"}
        got = (await recv_json(sockets["carol"]))["payload"]["data"]["chatEvents"]
        assert got["content"] == "plain" and got["type"] == "MESSAGE"  # the held one never reached her
        await mutate(server, world.token(world.mod), "mutation($m: ID!) { approveChatMessage(messageId: $m) { id } }",
                     {"m": held["id"]})
        for ws in sockets.values():
            while (event := (await recv_json(ws))["payload"]["data"]["chatEvents"])["id"] != held["id"]:
                pass
            assert event["type"] == "MESSAGE" and event["status"] == "visible"
    finally:
        for ws in sockets.values():
            await ws.close()


async def test_an_inserted_status_is_the_rules_own_but_for_admins(db: Database, world: World) -> None:
    """The insert half of the moderation rules (0026: at the end of chat_message_rules): a message is
    visible unless the channel's rules hold it, whatever status the insert names; an admin's insert keeps
    the status it names."""
    await set_live(db, world.public_stream)
    insert = ("INSERT INTO nchat_stream_chat_messages (stream_id, user_id, content, status) "
              "VALUES ($1, $2, $3, 'held') RETURNING status")
    async with db.session(Claims.service()) as s:
        assert await s.fetchval(insert, world.public_stream, world.bob, "an admin's held message") == "held"
    # A connection outside the role system (the migration owner) writing for another user than its claims':
    # the rules do not apply to it, the status is still the rules' own.
    raw = await db.connect_raw()
    try:
        async with raw.transaction():
            await raw.execute("SELECT set_config('hasura.user', $1, true)", Claims.user(world.carol).as_setting())
            assert await raw.fetchval(insert, world.public_stream, world.bob, "not carol's") == "visible"
    finally:
        await raw.close()
