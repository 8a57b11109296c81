"""GraphQL over websockets on /v1/graphql and /graphql, in both subprotocols.

One `Connection` per socket: a receive loop and a sender for what flow control holds back. Event
subscriptions that many sockets share run once per group (fanout.py) and are joined without a
task of their own; every other operation runs in its own task. Nothing is sent with an await on
the path of another subscriber: on uvicorn's websocket protocols a socket's frames are collected
and written to its transport once per pass of the event loop (wire.py), elsewhere they go through
the ASGI send or a bounded queue; a client whose backlog overflows (it stopped reading) is dropped
with a counted reason. Authentication comes from
`connection_init` (merged over the upgrade request's headers), and the socket closes when the
token expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, TypeVar

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    subscribe,
)
from starlette.websockets import WebSocket, WebSocketDisconnect

from ...auth import Claims
from ...errors import NchatError
from ...graphql.context import Context
from ...graphql.execution import Prepared, format_error, prepare, run
from ...graphql.hasura.live_queries import LiveQuery, compile_document
from ...observability import DROPPED_SUBSCRIBERS, SUBSCRIPTIONS, WEBSOCKETS
from .fanout import REPLAY_FIELDS, SHAREABLE_FIELDS, Member
from .limits import Limits
from .protocols import LEGACY_WS, TRANSPORT_WS, Close, Protocol, choose
from .wire import RawSocket, raw_socket, text_frame

if TYPE_CHECKING:
    from ...runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")


def format_result(result: ExecutionResult) -> dict[str, Any]:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [format_error(e, positions=True) for e in result.errors]
    return payload


class ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection:
    def __init__(self, websocket: WebSocket, runtime: Runtime, protocol: Protocol, subprotocol: str | None) -> None:
        self.ws = websocket
        self.runtime = runtime
        self.stats = runtime.bus_stats
        self.shared_feeds = runtime.shared_feeds
        self.limits: Limits = runtime.ws_limits
        self.protocol = protocol
        self.subprotocol = subprotocol
        self.claims: Claims | None = None
        self.init_received = False
        self.operations: dict[str, asyncio.Task[None] | Member] = {}
        self.live_queries: set[str] = set()
        self.limits_live = runtime.settings.ws_max_live_queries
        self.outbox: asyncio.Queue[str] = asyncio.Queue(self.limits.send_queue)
        # Writing to the transport directly (wire.py), when the server is one that allows it: then
        # every frame goes through `_frames`, written in one call per pass of the event loop.
        self.raw: RawSocket | None = None
        self._frames: list[bytes] = []
        self._held = 0  # websocket frames in `_frames` (an item may hold several)
        self.writes = runtime.ws_writes
        # A send in progress in the sender task (frames sent directly would overtake it).
        self._busy = False
        self._pending: tuple[Coroutine[Any, Any, None], Any] | None = None
        self._wake = asyncio.Event()
        self.done = asyncio.Event()
        self.ended = False  # done is set (read per frame: an attribute, not a call)
        self.close_code: int | None = None
        self.close_reason = ""
        self.disconnected = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def serve(self) -> None:
        await self.ws.accept(subprotocol=self.subprotocol)
        self.raw = raw_socket(self.ws.scope)
        WEBSOCKETS.inc()
        self.stats.connections += 1
        self._spawn(self._send_loop() if self.raw is None else self._raw_send_loop())
        self._spawn(self._receive_loop())
        self._spawn(self._init_timeout())
        try:
            await self.done.wait()
        finally:
            await self._teardown()
            self.stats.connections -= 1
            WEBSOCKETS.dec()

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    def shutdown(self, code: int | None, reason: str = "") -> None:
        """End the connection (close with `code`, or nothing to send when the client is gone)."""
        if self.done.is_set():
            return
        self.ended = True
        self.close_code, self.close_reason = code, reason[:120]
        self.done.set()

    async def _teardown(self) -> None:
        operations, self.operations = list(self.operations.values()), {}
        for operation in operations:
            operation.cancel()
        self._count_subscription(-len(operations))
        tasks = [*self._tasks, *(op for op in operations if isinstance(op, asyncio.Task))]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.close_code is not None and not self.disconnected:
            self.flush()  # what was said before the close (an error, a connection_error) goes first
            # A client that stopped reading may never take the close frame; do not wait for it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(self.close_code, self.close_reason), self.limits.close_timeout_s)

    # -- sending --------------------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        self.send_text(json.dumps(message, separators=(",", ":"), default=str))

    def send_frames(self, texts: list[str], wire: bytes) -> None:
        """Frames built once for many sockets, in order: `wire` is all of `texts` as websocket frames.

        Runs once per socket per shared write: with nothing of this connection's own waiting and the
        transport taking data, the bytes go out now; otherwise they join the connection's frames.
        """
        raw = self.raw
        if raw is None:
            for text in texts:
                self.send_text(text)
            return
        if self.ended:
            return
        if self._frames or not raw.writable.is_set() or raw.proto.close_sent or raw.transport.is_closing():
            self._push(wire, len(texts))
            return
        stats = self.stats
        stats.direct_sends += len(texts)
        stats.socket_writes += 1
        try:
            raw.transport.write(wire)
        except (RuntimeError, OSError):
            self.disconnected = True
            self.shutdown(None)

    # The methods below run once per frame per socket in a fan-out: kept to attribute reads.

    def _push(self, wire: bytes, count: int = 1) -> None:
        """Collect `count` frames for this pass's write; while the client is not reading, up to the queue limit."""
        if self.ended:
            return
        frames = self._frames
        if not frames:
            self.writes.mark(self)
        elif self._held + count > self.limits.send_queue and self.raw is not None and self.raw.paused:
            self._drop_slow(self._held)
            return
        frames.append(wire)
        self._held += count

    def flush(self) -> None:
        """Write the collected frames in one call, unless flow control holds them (then the sender task will)."""
        frames, raw = self._frames, self.raw
        if not frames or raw is None:
            return
        if raw.proto.close_sent or raw.transport.is_closing():
            frames.clear()
            self._held = 0
            self.disconnected = True
            self.shutdown(None)
            return
        if not raw.writable.is_set():
            self._wake.set()
            return
        count, self._held = self._held, 0
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        frames.clear()
        stats = self.stats
        stats.direct_sends += count
        stats.socket_writes += 1
        try:
            raw.transport.write(data)
        except (RuntimeError, OSError):
            self.disconnected = True
            self.shutdown(None)

    def _drop_slow(self, unread: int) -> None:
        self._frames.clear()
        self._held = 0
        self.stats.dropped["slow_consumer"] += 1
        DROPPED_SUBSCRIBERS.labels("slow_consumer").inc()
        self.shutdown(Close.SLOW, f"client too slow: {unread} messages unread")

    def _queued(self) -> int:
        return self._held if self.raw is not None else self.outbox.qsize()

    def send_text(self, text: str) -> None:
        """Send an encoded frame now when nothing is ahead of it, else queue it; a full queue drops the client.

        The fast path drives the ASGI send coroutine by hand: with the socket's write buffer below
        its high-water mark the server writes the frame and the coroutine ends without ever
        suspending, so a fan-out to N sockets costs no task switch and no queue round trip per
        socket. A send that has to wait (flow control) is handed to the sender task, and every
        later frame queues behind it, so the order per socket is kept.
        """
        if self.done.is_set():
            return
        if self.raw is not None:
            self._push(text_frame(text))
            return
        if not self._busy and self.outbox.empty():
            coro = self.ws.send({"type": "websocket.send", "text": text})
            try:
                yielded = coro.send(None)
            except StopIteration:
                self.stats.direct_sends += 1
                return
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.disconnected = True
                self.shutdown(None)
                return
            self._busy = True
            self._pending = (coro, yielded)
            self._wake.set()
            return
        try:
            self.outbox.put_nowait(text)
            self._wake.set()
        except asyncio.QueueFull:
            self._drop_slow(self.outbox.qsize())

    async def _send_loop(self) -> None:
        try:
            while True:
                if self._pending is not None:
                    coro, yielded = self._pending
                    self._pending = None
                    await _finish(coro, yielded)
                elif not self.outbox.empty():
                    self._busy = True
                    await self.ws.send_text(self.outbox.get_nowait())
                else:
                    self._busy = False
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._busy = self._pending is not None or not self.outbox.empty()
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.disconnected = True
            self.shutdown(None)

    async def _raw_send_loop(self) -> None:
        """Writes what `flush` held back while the transport's buffer was full, once it drains."""
        raw = self.raw
        assert raw is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await raw.writable.wait()
            self.flush()

    # -- receiving ------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    self.disconnected = True
                    self.shutdown(None)
                    return
                raw = message.get("text")
                if raw is None and message.get("bytes") is not None:
                    raw = message["bytes"].decode("utf-8", "replace")
                size = len(raw or "")
                if size > self.limits.max_message_bytes:
                    raise ProtocolViolation(
                        Close.TOO_BIG, f"message of {size} bytes; the limit is {self.limits.max_message_bytes}")
                self._handle(raw or "")
                if self._queued() > self.limits.send_queue // 2:
                    await self._drained()
        except ProtocolViolation as exc:
            self.shutdown(exc.code, exc.reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.disconnected = True
            self.shutdown(None)

    async def _drained(self) -> None:
        """Stop reading from a client that does not read its answers until they have gone out."""
        deadline = time.monotonic() + self.limits.drain_timeout_s
        while self._queued() > self.limits.send_queue // 4:
            if time.monotonic() > deadline:
                self.stats.dropped["slow_consumer"] += 1
                raise ProtocolViolation(Close.SLOW, "client too slow: answers not read")
            await asyncio.sleep(0.005)

    def _reject(self, op_id: str | None, reason: str, code: int = Close.BAD_REQUEST) -> None:
        """A protocol error: a close in graphql-transport-ws, an error message in the legacy one."""
        if self.protocol.strict:
            raise ProtocolViolation(code, reason)
        self.send(self.protocol.error(op_id, [{"message": reason, "extensions": {"code": "bad-request"}}]))

    def _handle(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._reject(None, "Invalid message received: expected a JSON object with a string 'type'")
            return
        kind = message["type"]
        op_id = message.get("id")
        if kind == "connection_init":
            self._connection_init(message.get("payload"))
        elif kind == self.protocol.start:
            self._start(op_id, message.get("payload"))
        elif kind == self.protocol.stop:
            operation = self.operations.pop(op_id, None) if isinstance(op_id, str) else None
            if operation is not None:
                operation.cancel()
                self._count_subscription(-1)
        elif kind == "ping" and self.protocol is TRANSPORT_WS:
            self.send({"type": "pong", **({"payload": message["payload"]} if "payload" in message else {})})
        elif kind == "pong" and self.protocol is TRANSPORT_WS:
            pass
        elif kind == "connection_terminate" and self.protocol is LEGACY_WS:
            self.shutdown(Close.NORMAL, "connection terminated by the client")
        else:
            self._reject(op_id if isinstance(op_id, str) else None, f"Unknown message type '{kind[:40]}'")

    # -- connection_init ------------------------------------------------------------------------

    def _connection_init(self, payload: Any) -> None:
        if self.init_received:
            self._reject(None, "Too many initialisation requests", Close.TOO_MANY_INITS)
            return
        self.init_received = True
        headers: dict[str, Any] = {k: v for k, v in self.ws.headers.items()}
        if isinstance(payload, dict):
            nested = payload.get("headers")
            if isinstance(nested, dict):
                headers.update({str(k).lower(): v for k, v in nested.items()})
            headers.update({str(k).lower(): v for k, v in payload.items() if k != "headers"})
        try:
            claims = self.runtime.auth.authenticate(headers)
            if claims.expires_at is not None and claims.expires_at <= time.time():
                raise NchatError("Could not verify JWT: JWTExpired", code="invalid-jwt")
        except NchatError as exc:
            self._auth_failed(exc.message)
            return
        self.claims = claims
        self.send({"type": "connection_ack"})
        if self.protocol is LEGACY_WS:
            self.send(self.protocol.keepalive)
        self._spawn(self._keepalive())
        if claims.expires_at is not None:
            self._spawn(self._expire(claims.expires_at))

    def _auth_failed(self, message: str) -> None:
        if self.protocol is LEGACY_WS:
            self.send({"type": "connection_error", "payload": {"message": message}})
        self.shutdown(Close.FORBIDDEN, f"Forbidden: {message}")

    async def _init_timeout(self) -> None:
        await asyncio.sleep(self.limits.init_timeout_s)
        if self.claims is None:
            self.shutdown(Close.INIT_TIMEOUT, "Connection initialisation timeout")

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.limits.keepalive_s)
            self.send(self.protocol.keepalive)

    async def _expire(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        message = "Could not verify JWT: JWTExpired"
        if self.protocol is LEGACY_WS:
            self.send({"type": "connection_error", "payload": {"message": message}})
        self.shutdown(Close.UNAUTHORIZED, message)

    # -- operations -----------------------------------------------------------------------------

    def _count_subscription(self, delta: int) -> None:
        SUBSCRIPTIONS.inc(delta)

    def operation_ended(self, op_id: str, handle: object) -> None:
        """An operation finished on its own (not stopped by the client): forget it."""
        if self.operations.get(op_id) is handle:
            del self.operations[op_id]
            self._count_subscription(-1)

    def _fail(self, op_id: str, errors: list[BaseException]) -> None:
        self.send(self.protocol.error(op_id, [format_error(e, positions=True) for e in errors]))

    def _start(self, op_id: Any, payload: Any) -> None:
        if not isinstance(op_id, str) or not op_id:
            self._reject(None, f"'{self.protocol.start}' needs a non-empty string 'id'")
            return
        if self.claims is None:
            self._reject(op_id, "Unauthorized: send connection_init and wait for connection_ack first",
                         Close.UNAUTHORIZED)
            return
        if op_id in self.operations:
            self._reject(op_id, f"Subscriber for {op_id[:40]} already exists", Close.DUPLICATE_ID)
            return
        if len(self.operations) >= self.limits.max_operations:
            self.send(self.protocol.error(op_id, [{
                "message": f"too many operations on this connection: the limit is {self.limits.max_operations}",
                "extensions": {"code": "too-many-operations"},
            }]))
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            self._reject(op_id, "the operation's payload needs a 'query' string")
            return
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            self._fail(op_id, [GraphQLError("'variables' must be an object", extensions={"code": "validation-failed"})])
            return
        if operation_name is not None and not isinstance(operation_name, str):
            self._fail(op_id, [GraphQLError("'operationName' must be a string",
                                            extensions={"code": "validation-failed"})])
            return
        claims = self.claims
        context = Context(self.runtime, claims, self.ws)
        # The one GraphQL front door (graphql/execution.py): caps, cached validation, depth, cost,
        # the introspection switch and Hasura's error shape, as over HTTP.
        try:
            prepared = prepare(context, payload["query"], operation_name, variables)
        except NchatError as exc:
            prepared = {"errors": [{"message": exc.message, "extensions": {"path": "$", "code": exc.code}}]}
        if not isinstance(prepared, Prepared):
            self.send(self.protocol.error(op_id, prepared["errors"]))
            return
        operation = prepared.operation
        assert operation is not None
        live = _live_query(prepared.schema, operation)
        if live:
            self.live_queries &= self.operations.keys()
            if len(self.live_queries) >= self.limits_live:
                self.send(self.protocol.error(op_id, [{
                    "message": f"too many live queries on this connection: the limit is {self.limits_live}",
                    "extensions": {"path": "$", "code": "too-many-operations", "limit": "live_queries"},
                }]))
                return
        schema, document, query = prepared.schema, prepared.document, payload["query"]
        # Subscribers with equal keys receive equal results: a running group is joined.
        key = (id(schema), query, operation_name, json.dumps(variables, sort_keys=True), claims.visibility_key())
        handle: asyncio.Task[None] | Member | None = self.shared_feeds.join(key, self, op_id)
        if handle is None:
            field = _shareable(operation)
            if field is not None:
                shared_context = Context(self.runtime, claims)

                def opener(ready: Callable[[], None]) -> Awaitable[Any]:
                    shared_context.feed_ready = ready
                    return _open(schema, document, variables, operation_name, shared_context)

                handle = self.shared_feeds.start(key, opener, self, op_id, replay=field in REPLAY_FIELDS)
            else:
                compiled = compile_document(context, schema, document, operation, query, variables) if live else None
                handle = asyncio.get_running_loop().create_task(
                    self._operation(op_id, prepared, variables, operation_name, context) if compiled is None
                    else self._live_operation(op_id, compiled))
        self.operations[op_id] = handle
        if live:
            self.live_queries.add(op_id)
        self._count_subscription(1)

    async def _operation(self, op_id: str, prepared: Prepared, variables: dict[str, Any] | None,
                         operation_name: str | None, context: Context) -> None:
        completed = False
        listening = False
        operation = prepared.operation
        assert operation is not None

        def ready() -> None:
            nonlocal listening
            if not listening:
                listening = True
                self.stats.subscribers += 1

        context.feed_ready = ready
        try:
            if operation.operation is OperationType.MUTATION:
                # Carried out whole even if the socket closes or the client stops it meanwhile, as over
                # HTTP: cancelled, its write could commit (or have committed) without its events.
                response = await carry_out(run(context, prepared, variables, operation_name, positions=True))
                self.send(self.protocol.next(op_id, response))
                completed = True
            elif operation.operation is OperationType.QUERY:
                # Queries run as over HTTP: one transaction, the request deadline, the same error shape.
                response = await run(context, prepared, variables, operation_name, positions=True)
                self.send(self.protocol.next(op_id, response))
                completed = True
            else:
                stream = await _open(prepared.schema, prepared.document, variables, operation_name, context)
                if isinstance(stream, ExecutionResult):
                    if stream.errors:
                        self._fail(op_id, list(stream.errors))
                    else:
                        self.send(self.protocol.next(op_id, format_result(stream)))
                        completed = True
                else:
                    completed = await self._pump(op_id, stream)
        except Exception as exc:
            self._fail(op_id, [exc])
        finally:
            if listening:
                self.stats.subscribers -= 1
            self.operation_ended(op_id, asyncio.current_task())
        if completed:
            self.send(self.protocol.complete(op_id))

    async def _live_operation(self, op_id: str, query: LiveQuery) -> None:
        """A live query that Postgres answers with the whole `data` object (`compile_document`): each
        changed result's JSON text goes into the frame as it is, never decoded nor encoded here."""
        # The envelope around each result, built once (the id is JSON-escaped: the only NUL is the marker).
        head, tail = self.protocol.frame(op_id, '{"data":\0}').split("\0")
        try:
            async with contextlib.aclosing(self.runtime.live.subscribe_text(query.ctx, query)) as results:
                async for text in results:
                    # Written now when nothing of this socket's waits, not at the end of the loop's pass.
                    frame = head + text + tail
                    self.send_frames([frame], text_frame(frame))
        except Exception as exc:
            self._fail(op_id, [exc])
        finally:
            self.operation_ended(op_id, asyncio.current_task())

    async def _pump(self, op_id: str, stream: AsyncIterator[ExecutionResult]) -> bool:
        """Send each result; False when it ended with an error message (no complete follows)."""
        try:
            async for result in stream:
                if result.errors and result.data is None:
                    self._fail(op_id, list(result.errors))
                    return False
                self.send(self.protocol.next(op_id, format_result(result)))
            return True
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


_CARRIED: set[asyncio.Task[Any]] = set()


async def carry_out(work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result; if the caller is cancelled meanwhile, `work` still runs to its end. Its task is
    held here until then: the event loop holds tasks only weakly."""
    task = asyncio.ensure_future(work)
    _CARRIED.add(task)
    task.add_done_callback(_CARRIED.discard)
    return await asyncio.shield(task)


async def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Run to its end a coroutine that `send_text` started by hand and that suspended on `yielded`."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([yielded])
        except asyncio.CancelledError:
            coro.close()
            raise
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


def _shareable(operation: OperationDefinitionNode) -> str | None:
    """The root field of a subscription of exactly one root field that is a pure event feed; else None."""
    if operation.operation is not OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) == 1 and isinstance(selections[0], FieldNode) and selections[0].name.value in SHAREABLE_FIELDS:
        return selections[0].name.value
    return None


def _live_query(schema: GraphQLSchema, operation: OperationDefinitionNode) -> bool:
    """A subscription on a table (a live query or stream, re-run on change), not an event feed."""
    root = schema.subscription_type
    if operation.operation is not OperationType.SUBSCRIPTION or root is None:
        return False
    for sel in operation.selection_set.selections:
        if isinstance(sel, FieldNode):
            field = root.fields.get(sel.name.value)
            if field is not None and (field.extensions or {}).get("nchat") is not None:
                return True
    return False


async def _open(schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None,
                operation_name: str | None, context: Context) -> AsyncIterator[ExecutionResult] | ExecutionResult:
    stream = subscribe(schema, document, variable_values=variables, operation_name=operation_name,
                       context_value=context)
    # graphql-core 3.3 hands back the iterator itself when the field's resolver is an async
    # generator (every Strawberry subscription), and an awaitable only for coroutine resolvers.
    if isawaitable(stream):
        stream = await stream
    return stream


async def graphql_websocket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    offered = [str(p) for p in websocket.scope.get("subprotocols") or []]
    chosen = choose(offered)
    if chosen is None:
        # Before accept, a close is an HTTP 403 for the upgrade.
        await websocket.close(code=Close.BAD_REQUEST,
                              reason=f"unsupported subprotocol(s) {offered}; use graphql-transport-ws or graphql-ws")
        return
    protocol, subprotocol = chosen
    client = websocket.client.host if websocket.client is not None else ""
    cap = runtime.settings.ws_max_connections_per_client
    if cap > 0 and _connections.get(client, 0) >= cap:
        # Accepted so that the client reads why (a close before accept is a bare HTTP 403).
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(code=Close.POLICY, reason=f"too many connections from this address: the limit is {cap}")
        return
    _connections[client] = _connections.get(client, 0) + 1
    try:
        await Connection(websocket, runtime, protocol, subprotocol).serve()
    finally:
        _connections[client] -= 1
        if _connections[client] <= 0:
            del _connections[client]


# Open sockets per client address in this process (NCHAT_WS_MAX_CONNECTIONS_PER_CLIENT).
_connections: dict[str, int] = {}
