"""Reading a GraphQL selection the way execution will: fragments, @skip/@include, aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
    get_argument_values,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_directive_values


@dataclass(frozen=True)
class Selected:
    """One response key: its field definition and every node that asked for it (merged)."""

    key: str
    field: GraphQLField
    nodes: tuple[FieldNode, ...]
    # The compiler's descriptor from the field's extensions (None for plain fields).
    meta: Any


class Reader:
    def __init__(self, variables: VariableValues | None, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.variables = variables
        self.fragments = fragments

    def args(self, selected: Selected) -> dict[str, Any]:
        return get_argument_values(selected.field, selected.nodes[0], self.variables)

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
