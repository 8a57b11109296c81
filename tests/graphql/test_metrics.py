"""The GraphQL pipeline's Prometheus metrics move with the operations it runs."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.graphql.conftest import GQL, code, data


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_operations_are_counted_by_root_field_and_outcome(gql: GQL) -> None:
    ok = _value("nchat_graphql_operations_total", operation="nchat_streams", outcome="ok")
    failed = _value("nchat_graphql_operations_total", operation="nchat_streams_by_pk", outcome="error")
    data(await gql("{ nchat_streams(limit: 1) { id } }", as_="bob"))
    assert _value("nchat_graphql_operations_total", operation="nchat_streams", outcome="ok") == ok + 1
    code(await gql('{ nchat_streams_by_pk(id: "not-a-uuid") { id } }', as_="bob"))
    assert _value("nchat_graphql_operations_total", operation="nchat_streams_by_pk", outcome="error") == failed + 1


async def test_errors_are_counted_by_code_refused_documents_too(gql: GQL) -> None:
    refused = _value("nchat_graphql_operations_total", operation="(refused)", outcome="error")
    invalid = _value("nchat_graphql_errors_total", code="validation-failed")
    assert code(await gql("{ no_such_field }", as_="bob")) == "validation-failed"
    assert _value("nchat_graphql_errors_total", code="validation-failed") == invalid + 1
    assert _value("nchat_graphql_operations_total", operation="(refused)", outcome="error") == refused + 1
    data_exception = _value("nchat_graphql_errors_total", code="data-exception")
    assert code(await gql('{ nchat_streams_by_pk(id: "not-a-uuid") { id } }', as_="bob")) == "data-exception"
    assert _value("nchat_graphql_errors_total", code="data-exception") == data_exception + 1
