"""Running one GraphQL request as a caller: limits, validation, execution, Hasura-shaped answers.

`execute` serves queries and mutations (HTTP, and websockets for non-subscription operations);
`subscribe` serves subscriptions. Both answer in Hasura's shape: `{"data": ...}` on success,
`{"errors": [{"message", "extensions": {"code", "path"}}]}` otherwise (no partial data, as Hasura).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

import graphql
import orjson
from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    specified_rules,
)

from ..db.errors import sqlstate_of
from ..errors import NchatError
from ..observability import GRAPHQL_ERRORS, GRAPHQL_OPERATIONS
from .context import Context, SharedSession
from .direct import DirectPlan, run_direct
from .direct import plan_for as plan_for_direct
from .hasura.fast import plan_for, run_plan
from .limits import DocumentLimits, check_cost, check_syntax, refusal

log = logging.getLogger(__name__)

Response = dict[str, Any]
_CACHE_SIZE = 512
_Key = tuple[int, str, bool, DocumentLimits]
_documents: OrderedDict[_Key, tuple[DocumentNode | None, list[Response]]] = OrderedDict()
_UNKNOWN_FIELD = re.compile(r"^Cannot query field '([^']+)' on type '([^']+)'\.")


@dataclass(frozen=True)
class Prepared:
    schema: GraphQLSchema
    document: DocumentNode
    operation: OperationDefinitionNode | None


def error(message: str, code: str = "validation-failed", path: str = "$") -> Response:
    return {"errors": [{"message": message, "extensions": {"path": path, "code": code}}]}


class _Rollback(Exception):
    def __init__(self, result: ExecutionResult) -> None:
        self.result = result


def _brace_depth(query: str) -> int:
    """Nesting of braces outside strings and comments: a guard before the recursive parser."""
    depth = deepest = 0
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch == "#":
            end = query.find("\n", i)
            i = n if end < 0 else end
        elif ch == '"':
            i += 1
            while i < n and query[i] != '"':
                i += 2 if query[i] == "\\" else 1
        elif ch == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "}":
            depth -= 1
        i += 1
    return deepest


def _depth(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
           visiting: frozenset[str] = frozenset()) -> int:
    if selection_set is None:
        return 0
    best = 0
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            # Introspection documents are deep by nature (ofType chains) and served by the engine.
            d = 0 if sel.name.value.startswith("__") else 1 + _depth(sel.selection_set, fragments, visiting)
        elif isinstance(sel, InlineFragmentNode):
            d = _depth(sel.selection_set, fragments, visiting)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in visiting and sel.name.value in fragments:
            d = _depth(fragments[sel.name.value].selection_set, fragments, visiting | {sel.name.value})
        else:
            d = 0
        best = max(best, d)
    return best


def _node_paths(document: DocumentNode) -> dict[int, str]:
    """Hasura-style paths ($.selectionSet.a.selectionSet.b) for the nodes of a document."""
    paths: dict[int, str] = {}

    def walk(selection_set: SelectionSetNode | None, prefix: str) -> None:
        if selection_set is None:
            return
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                path = f"{prefix}.selectionSet.{sel.name.value}"
                paths[id(sel)] = path
                for arg in sel.arguments or ():
                    paths[id(arg)] = f"{path}.args.{arg.name.value}"
                walk(sel.selection_set, path)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, prefix)

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walk(definition.selection_set, "$")
        elif isinstance(definition, FragmentDefinitionNode):
            walk(definition.selection_set, f"$.fragmentDefinitions.{definition.name.value}")
    return paths


def _validation_error(err: GraphQLError, paths: dict[int, str]) -> Response:
    message = err.message
    match = _UNKNOWN_FIELD.match(message)
    if match:
        message = f"field '{match.group(1)}' not found in type: '{match.group(2)}'"
    path = "$"
    for node in reversed(err.nodes or []):
        if isinstance(node, (FieldNode, ArgumentNode)) and id(node) in paths:
            path = paths[id(node)]
            break
    return {"message": message, "extensions": {"path": path, "code": "validation-failed"}}


def format_error(err: BaseException, *, positions: bool = False) -> Response:
    """A Hasura-shaped error: message and extensions.code (and path); unexpected failures are masked.

    HTTP and websockets both answer through this. `positions` adds GraphQL's own `path` and
    `locations` (websocket clients such as Apollo show them); HTTP leaves them out, as Hasura.
    """
    gql = err if isinstance(err, GraphQLError) else None
    original = gql.original_error if gql is not None else err
    if isinstance(original, NchatError):
        out: Response = {"message": original.message,
                         "extensions": {**original.extensions, "path": "$", "code": original.code}}
    elif original is not None and not isinstance(original, GraphQLError):
        if gql is not None and gql.path is None:  # coercing a request value (a variable) failed
            out = {"message": gql.message, "extensions": {"path": "$", "code": "validation-failed"}}
        else:
            where = ".".join(map(str, gql.path)) if gql is not None and gql.path else "an operation"
            log.error("unexpected error in GraphQL field %s", where, exc_info=original)
            out = {"message": "unexpected error", "extensions": {"path": "$", "code": "unexpected"}}
    else:
        assert gql is not None
        extensions = gql.extensions or {}
        code = extensions.get("code") or ("validation-failed" if gql.path is None else "unexpected")
        out = {"message": gql.message, "extensions": {"path": "$", **extensions, "code": code}}
    if positions and gql is not None:
        if gql.path:
            out["path"] = list(gql.path)
        if gql.locations:
            out["locations"] = [{"line": loc.line, "column": loc.column} for loc in gql.locations]
    return out


def format_result(result: ExecutionResult) -> Response:
    if result.errors:
        return {"errors": [format_error(e) for e in result.errors]}
    return {"data": result.data}


def prepare(ctx: Context, query: Any, operation_name: Any = None, variables: Any = None) -> Prepared | Response:
    """`_prepare`, counted: a refused document under the operation "(refused)", a subscription's root
    fields as "subscribed" (queries and mutations are counted with their outcome by `run`)."""
    prepared = _prepare(ctx, query, operation_name, variables)
    if not isinstance(prepared, Prepared):
        GRAPHQL_OPERATIONS.labels("(refused)", "error").inc()
        _count_errors(prepared)
    elif prepared.operation is not None and prepared.operation.operation == OperationType.SUBSCRIPTION:
        for name in root_fields(prepared):
            GRAPHQL_OPERATIONS.labels(name, "subscribed").inc()
    return prepared


def root_fields(prepared: Prepared) -> list[str]:
    """The root field names the prepared operation selects (fragments followed, aliases ignored)."""
    fragments = {d.name.value: d for d in prepared.document.definitions if isinstance(d, FragmentDefinitionNode)}
    names: list[str] = []

    def walk(selection_set: SelectionSetNode, seen: frozenset[str]) -> None:
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.name.value not in names:
                    names.append(sel.name.value)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments and sel.name.value not in seen:
                walk(fragments[sel.name.value].selection_set, seen | {sel.name.value})

    if prepared.operation is not None:
        walk(prepared.operation.selection_set, frozenset())
    return names


def _count_errors(response: Response) -> None:
    for err in response.get("errors") or ():
        GRAPHQL_ERRORS.labels(str(err.get("extensions", {}).get("code", "unexpected"))).inc()


def _prepare(ctx: Context, query: Any, operation_name: Any = None, variables: Any = None) -> Prepared | Response:
    """The one front door of every transport: parse and validate `query` for the caller, or the errors.

    In order, each step bounded by the one before: the request's shape, a brace-depth guard, parsing
    with a token cap, alias and root-field caps, the depth limit, graphql-core's validation (with
    the introspection switch) - cached per (schema, document, introspection, limits) - then the
    operation and its cost estimate, which depend on the request's operation name and variables.
    """
    schema = ctx.runtime.graphql.for_role(ctx.claims.role)
    if not isinstance(query, str) or not query.strip():
        return error("the request has no \"query\" (a GraphQL document string)", path="$.query")
    if variables is not None and not isinstance(variables, dict):
        return error("\"variables\" must be a JSON object", path="$.variables")
    if operation_name is not None and not isinstance(operation_name, str):
        return error("\"operationName\" must be a string", path="$.operationName")
    settings = ctx.runtime.settings
    limits = DocumentLimits.of(settings)
    introspection = settings.introspection_for_all or ctx.claims.is_admin
    key = (id(schema), query, introspection, limits)
    cached = _documents.get(key)
    if cached is None:
        cached = _parse_and_validate(schema, query, introspection, limits)
        _documents[key] = cached
        if len(_documents) > _CACHE_SIZE:
            _documents.popitem(last=False)
    else:
        _documents.move_to_end(key)
    document, errors = cached
    if document is None:
        return {"errors": errors}
    operation = graphql.get_operation_ast(document, operation_name)
    if operation is None:
        return error("no operation with that name in the document" if operation_name
                     else "the document needs exactly one operation, or an operationName")
    cost = check_cost(schema, document.definitions, operation, variables, limits)
    if cost:
        return {"errors": cost}
    return Prepared(schema, document, operation)


def _parse_and_validate(
    schema: GraphQLSchema, query: str, introspection: bool, limits: DocumentLimits
) -> tuple[DocumentNode | None, list[Response]]:
    max_depth = limits.max_depth
    limit_message = f"the query is nested deeper than the maximum depth of {max_depth}"
    if _brace_depth(query) > max_depth * 2 + 32:
        return None, [refusal(limit_message, "depth")]
    try:
        document = graphql.parse(query, max_tokens=limits.max_tokens)
    except GraphQLError as exc:
        if "tokens" in exc.message and "Parsing aborted" in exc.message:
            return None, [refusal(f"the query has more than {limits.max_tokens} tokens, the limit", "tokens")]
        return None, error(f"not a valid graphql query: {exc.message}", path="$.query")["errors"]
    refused = check_syntax(document.definitions, limits)
    if refused:
        return None, refused
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and _depth(definition.selection_set, fragments) > max_depth:
            return None, [refusal(limit_message, "depth")]
    rules = list(specified_rules)
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    problems = graphql.validate(schema, document, rules)
    if problems:
        paths = _node_paths(document)
        return None, [_validation_error(p, paths) for p in problems]
    return document, []


async def execute(
    ctx: Context, query: Any, variables: Any = None, operation_name: str | None = None
) -> Response:
    """Run a query or mutation as `ctx.claims` (HTTP); the JSON to send back."""
    try:
        prepared = prepare(ctx, query, operation_name, variables)
    except NchatError as exc:
        return error(exc.message, exc.code)
    if not isinstance(prepared, Prepared):
        return prepared
    if prepared.operation is not None and prepared.operation.operation == OperationType.SUBSCRIPTION:
        return error("subscriptions are served over a websocket (graphql-transport-ws or graphql-ws)")
    return await run(ctx, prepared, variables, operation_name)


def dumps(response: Any) -> bytes:
    """A response as compact JSON bytes (orjson; the standard encoder for what orjson refuses,
    e.g. integers past 64 bits)."""
    try:
        return orjson.dumps(response)
    except TypeError:
        return json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode()


async def execute_json(
    ctx: Context, query: Any, variables: Any = None, operation_name: str | None = None
) -> bytes:
    """`execute`, as the response's JSON bytes (HTTP). A query document of table-API root fields
    takes the fast path (`hasura/fast.py`): validated here as every document, then ONE statement
    whose JSON text Postgres builds is the response, never decoded in Python."""
    try:
        prepared = prepare(ctx, query, operation_name, variables)
    except NchatError as exc:
        return dumps(error(exc.message, exc.code))
    if not isinstance(prepared, Prepared):
        return dumps(prepared)
    operation = prepared.operation
    if operation is not None and operation.operation == OperationType.QUERY and isinstance(query, str):
        raw = await _run_fast(ctx, prepared, operation, query, variables, operation_name)
        if raw is not None:
            return raw
    elif operation is not None and operation.operation == OperationType.SUBSCRIPTION:
        return dumps(error("subscriptions are served over a websocket (graphql-transport-ws or graphql-ws)"))
    return dumps(await run(ctx, prepared, variables, operation_name))


async def _run_fast(ctx: Context, prepared: Prepared, operation: OperationDefinitionNode, query: str,
                    variables: Any, operation_name: str | None) -> bytes | None:
    """The fast path's answer, or None: the normal path answers (other fields, or any error)."""
    planned = plan_for(ctx, prepared.schema, prepared.document, operation, query, operation_name,
                       variables if isinstance(variables, dict) else None)
    if planned is None:
        return None
    plan, coerced = planned
    deadline = ctx.runtime.settings.request_timeout_seconds
    try:
        async with asyncio.timeout(deadline if deadline > 0 else None):
            raw = await run_plan(ctx, plan, coerced)
    except TimeoutError:
        response = error(f"the request ran longer than its deadline of {deadline:g} s", code="timeout")
        _count_errors(response)
        return dumps(response)
    except NchatError as exc:  # a timeout or a busy client: running it again would not help
        response = {"errors": [format_error(exc)]}
        _count_errors(response)
        return dumps(response)
    if raw is not None:
        for counter in _ok_counters(prepared):
            counter.inc()
    return raw


_counters: OrderedDict[int, tuple[DocumentNode, OperationDefinitionNode | None, list[Any]]] = OrderedDict()


def _ok_counters(prepared: Prepared) -> list[Any]:
    """GRAPHQL_OPERATIONS' "ok" children of the operation's root fields, kept per document and operation
    (a successful request would otherwise walk its document and look the labels up every time)."""
    key = id(prepared.operation)
    found = _counters.get(key)
    if found is not None and found[0] is prepared.document and found[1] is prepared.operation:
        return found[2]
    counters = [GRAPHQL_OPERATIONS.labels(name, "ok") for name in root_fields(prepared)]
    _counters[key] = (prepared.document, prepared.operation, counters)
    if len(_counters) > _CACHE_SIZE:
        _counters.popitem(last=False)
    return counters


async def run(ctx: Context, prepared: Prepared, variables: Any, operation_name: str | None, *,
              positions: bool = False) -> Response:
    """A prepared query or mutation, on any transport, under the request deadline.

    A mutation document is one transaction (any error rolls every root field back); the table
    root fields of a query document share one transaction, opened when the first needs it.
    """
    deadline = ctx.runtime.settings.request_timeout_seconds
    try:
        async with asyncio.timeout(deadline if deadline > 0 else None):
            response = await _run_operation(ctx, prepared, variables, operation_name, positions)
    except TimeoutError:
        response = error(f"the request ran longer than its deadline of {deadline:g} s", code="timeout")
    if response.get("errors"):
        for name in root_fields(prepared):
            GRAPHQL_OPERATIONS.labels(name, "error").inc()
        _count_errors(response)
    else:
        for counter in _ok_counters(prepared):
            counter.inc()
    return response


def _errors(result: ExecutionResult, positions: bool) -> Response:
    # A failed statement aborts the transaction; the fields after it fail with "current
    # transaction is aborted", which says nothing the first error did not.
    errors = [e for e in result.errors or [] if sqlstate_of(e.original_error) != "25P02"] or result.errors or []
    return {"errors": [format_error(e, positions=positions) for e in errors]}


async def _run_operation(ctx: Context, prepared: Prepared, variables: Any, operation_name: str | None,
                         positions: bool) -> Response:
    operation = prepared.operation
    if operation is None or operation.operation != OperationType.MUTATION:
        shared = SharedSession(ctx)
        ctx.query_session = shared
        failed: BaseException | None = None
        try:
            result = await _run(prepared, ctx, variables, operation_name)
            if result.errors:
                failed = _Rollback(result)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            ctx.query_session = None
            await shared.close(failed)
        return _errors(result, positions) if result.errors else {"data": result.data}
    direct = plan_for_direct(prepared.schema, operation)
    if direct is not None and direct.one_statement is not None:
        return await _run_one_statement(ctx, direct, variables, positions)
    # Every mutation root field of the request in one transaction: any error rolls all back.
    try:
        async with ctx.session() as session:
            ctx.mutation_session = session
            if direct is not None:
                ctx.raw_variables = variables if isinstance(variables, dict) else None
                result = await run_direct(direct, ctx, ctx.raw_variables)
            else:
                result = await _run(prepared, ctx, variables, operation_name)
            if result.errors:
                raise _Rollback(result)
    except _Rollback as rollback:
        return _errors(rollback.result, positions)
    except NchatError as exc:  # failed at commit (e.g. a deferred constraint)
        return error(exc.message, exc.code)
    finally:
        ctx.mutation_session = None
    return {"data": result.data}


async def _run_one_statement(ctx: Context, direct: DirectPlan, variables: Any, positions: bool) -> Response:
    """A direct mutation whose resolver makes one statement: it commits in that statement's round trip
    (`Context.one_statement_session`) instead of set-up, statement and COMMIT. A refused statement
    commits nothing and its resolver emits nothing; an event the resolver emitted belongs to a row
    already committed, so it is published whatever the answer's shaping then says."""
    assert direct.one_statement is not None
    session = ctx.one_statement_session(direct.one_statement)
    ctx.mutation_session = session
    ctx.raw_variables = variables if isinstance(variables, dict) else None
    try:
        result = await run_direct(direct, ctx, ctx.raw_variables)
    finally:
        ctx.mutation_session = None
    await session.run_after_commit()
    return _errors(result, positions) if result.errors else {"data": result.data}


async def _run(prepared: Prepared, ctx: Context, variables: Any, operation_name: str | None) -> ExecutionResult:
    ctx.raw_variables = variables if isinstance(variables, dict) else None
    result = graphql.execute(prepared.schema, prepared.document, context_value=ctx, variable_values=variables,
                             operation_name=operation_name)
    if isawaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    return result


async def subscribe(
    ctx: Context, query: Any, variables: Any = None, operation_name: str | None = None
) -> Response | AsyncIterator[Response]:
    """A subscription as `ctx.claims`: an async iterator of responses, or the errors to send once.

    The iterator's `aclose()` ends the underlying subscription (and its live query).
    """
    try:
        prepared = prepare(ctx, query, operation_name, variables)
    except NchatError as exc:
        return error(exc.message, exc.code)
    if not isinstance(prepared, Prepared):
        return prepared
    ctx.raw_variables = variables if isinstance(variables, dict) else None
    stream = graphql.subscribe(prepared.schema, prepared.document, context_value=ctx, variable_values=variables,
                               operation_name=operation_name)
    if isawaitable(stream):
        stream = await stream
    if isinstance(stream, ExecutionResult):
        return format_result(stream)
    source: Any = stream

    async def responses() -> AsyncIterator[Response]:
        try:
            async for result in source:
                yield format_result(result)
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    return responses()


__all__ = ["Prepared", "dumps", "error", "execute", "execute_json", "format_error", "prepare", "run", "subscribe"]
