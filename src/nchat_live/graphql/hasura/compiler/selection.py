"""Reading a GraphQL selection the way execution will: fragments, @skip/@include, aliases.

Also the one place where an argument's key order matters: graphql-core builds input objects in
the schema's field order, but Hasura orders by the keys of one `order_by` object in the order the
client wrote them (`{status: asc, created_at: desc}` sorts by status first). That order is read
back from the document (or from the request's variables as sent; Python keeps JSON key order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSkipDirective,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_argument_values,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_directive_values

_MISSING = object()


@dataclass(frozen=True)
class Selected:
    """One response key: its field definition and every node that asked for it (merged)."""

    key: str
    field: GraphQLField
    nodes: tuple[FieldNode, ...]
    # The compiler's descriptor from the field's extensions (None for plain fields).
    meta: Any


class Reader:
    def __init__(
        self, variables: VariableValues | None, fragments: dict[str, FragmentDefinitionNode],
        raw_variables: dict[str, Any] | None = None, variable_defaults: Mapping[str, ValueNode] | None = None,
    ) -> None:
        self.variables = variables
        self.fragments = fragments
        self.raw_variables = raw_variables or {}
        self.variable_defaults = variable_defaults or {}

    @classmethod
    def of(cls, info: GraphQLResolveInfo[Any], raw: dict[str, Any] | None = None) -> Reader:
        """The reader of a resolver's field; `raw` are the variables as the client sent them."""
        defaults = {d.variable.name.value: d.default_value for d in info.operation.variable_definitions or ()
                    if d.default_value is not None}
        return cls(info.variable_values, info.fragments, raw if isinstance(raw, dict) else None, defaults)

    def args(self, selected: Selected) -> dict[str, Any]:
        return self.in_document_order(selected, get_argument_values(selected.field, selected.nodes[0],
                                                                     self.variables))

    def in_document_order(self, selected: Selected, args: dict[str, Any]) -> dict[str, Any]:
        """`args` with the keys of its `order_by` objects in the order the client wrote them."""
        if not args.get("order_by"):
            return args
        for arg in selected.nodes[0].arguments or ():
            if arg.name.value == "order_by":
                return {**args, "order_by": self._ordered(args["order_by"], arg.value)}
        return args

    def _ordered(self, value: Any, node: ValueNode | None) -> Any:
        if isinstance(node, VariableNode):
            raw = self.raw_variables.get(node.name.value, _MISSING)
            if raw is _MISSING:
                return self._ordered(value, self.variable_defaults.get(node.name.value))
            return _ordered_like(value, raw)
        if isinstance(value, list):
            if isinstance(node, ListValueNode):
                return [self._ordered(v, n) for v, n in zip(value, node.values, strict=False)]
            # A single object where a list is expected (input coercion wraps it).
            return [self._ordered(v, node) for v in value]
        if isinstance(value, dict) and isinstance(node, ObjectValueNode):
            written = {f.name.value: f.value for f in node.fields}
            out = {k: self._ordered(value[k], n) for k, n in written.items() if k in value}
            return out | {k: v for k, v in value.items() if k not in out}
        return value

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def fields(self, parent: GraphQLObjectType, nodes: tuple[FieldNode, ...] | list[FieldNode]) -> list[Selected]:
        """The fields selected under `nodes` on the object type `parent`, keyed by response key."""
        grouped: dict[str, list[FieldNode]] = {}
        seen: set[str] = set()

        def visit(selection_set: SelectionSetNode | None) -> None:
            if selection_set is None:
                return
            for sel in selection_set.selections:
                if not self._included(sel):
                    continue
                if isinstance(sel, FieldNode):
                    if sel.name.value.startswith("__"):
                        continue  # __typename: answered by the executor, not by SQL
                    key = sel.alias.value if sel.alias else sel.name.value
                    grouped.setdefault(key, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    visit(sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                    seen.add(sel.name.value)
                    fragment = self.fragments.get(sel.name.value)
                    if fragment is not None:
                        visit(fragment.selection_set)
                    seen.discard(sel.name.value)

        for node in nodes:
            visit(node.selection_set)
        result = []
        for key, group in grouped.items():
            field = parent.fields[group[0].name.value]
            result.append(Selected(key, field, tuple(group), (field.extensions or {}).get("nchat")))
        return result

    def child_fields(self, selected: Selected) -> list[Selected]:
        named = get_named_type(selected.field.type)
        assert isinstance(named, GraphQLObjectType)
        return self.fields(named, selected.nodes)


def _ordered_like(value: Any, raw: Any) -> Any:
    """`value` (coerced) with dict keys in the order of `raw` (the JSON the client sent)."""
    if isinstance(value, list):
        raws = raw if isinstance(raw, list) else [raw] * len(value)
        return [_ordered_like(v, r) for v, r in zip(value, raws, strict=False)]
    if isinstance(value, dict) and isinstance(raw, dict):
        out = {k: _ordered_like(value[k], raw[k]) for k in raw if k in value}
        return out | {k: v for k, v in value.items() if k not in out}
    return value
