"""Value-node strategies for the schema's custom scalars: real ids of the cast, edge values and junk.

hypothesis-graphql generates values only for the built-in scalars; each custom scalar needs a
strategy that yields GraphQL literal nodes. Junk strings are schema-valid literals (custom scalars
take any literal), so they reach the server's coercion and PostgreSQL, which must refuse them cleanly.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import graphql
from hypothesis import strategies as st
from hypothesis_graphql import nodes

JUNK = st.sampled_from([
    "", " ", "null", "NaN", "Infinity", "-1", "1e309", "9" * 40, "'; DROP TABLE nchat_users; --", "\x00", "{",
    "{a,b", "}", "\\", "%", "_", "0000-00-00", "2024-13-45T25:61:61Z", "::1/200", "{\"a\":", "true",
]) | st.text(max_size=24)


def literal(value: Any) -> graphql.ValueNode:
    """A GraphQL literal for a JSON-like Python value."""
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return graphql.BooleanValueNode(value=value)
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    if isinstance(value, float):
        return graphql.FloatValueNode(value=repr(value))
    if isinstance(value, str):
        return graphql.StringValueNode(value=value)
    if isinstance(value, list):
        return graphql.ListValueNode(values=tuple(literal(v) for v in value))
    return graphql.ObjectValueNode(fields=tuple(
        graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=literal(v)) for k, v in value.items()))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}",
                                                                              fullmatch=True), inner, max_size=3),
    max_leaves=8,
)


def custom_scalars(ids: list[str]) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Strategies keyed by scalar name; `ids` are real row ids, so lookups hit rows RLS guards."""
    uuid = st.sampled_from(ids) | st.uuids().map(str) | JUNK
    moment = (st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()) | st.datetimes().map(str)
              | JUNK)
    int8 = st.integers(-(2**70), 2**70).map(nodes.Int) | st.integers(-(2**64), 2**64).map(str).map(nodes.String)
    numeric = (st.floats().map(repr).map(nodes.String) | st.floats(allow_nan=False, allow_infinity=False)
               .map(nodes.Float) | st.integers(-(2**80), 2**80).map(nodes.Int) | JUNK.map(nodes.String))
    text_array = st.lists(st.text(max_size=8), max_size=4).map(literal) | JUNK.map(nodes.String)
    inet = (st.ip_addresses().map(str) | st.sampled_from(["10.0.0.0/8", "::1", "256.1.1.1"]) | JUNK).map(nodes.String)
    return {
        "uuid": uuid.map(nodes.String),
        "timestamptz": moment.map(nodes.String),
        "DateTime": moment.map(nodes.String),
        "int8": int8,
        "numeric": numeric,
        "jsonb": _json.map(literal) | JUNK.map(nodes.String),
        "JSON": _json.map(literal) | JUNK.map(nodes.String),
        "_text": text_array,
        "inet": inet,
    }
