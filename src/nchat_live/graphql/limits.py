"""What a GraphQL document may cost, measured on its syntax tree before any validation or SQL.

Every check here is one linear walk of the parsed document (fragments expanded once per spread,
cycles cut), so a refused document costs the server no more than reading it: graphql-core's full
validation (OverlappingFieldsCanBeMerged grows quadratically with the fields of a selection) runs
only on documents within the token, alias, root-field and field caps (the field cap bounds the
pairs of same-named unaliased fields that rule compares).

The cost is an estimate of the rows the worst case touches: each list-typed field multiplies the
cost of its selection by its `limit` argument (or `NCHAT_MAX_ROWS` without one, which the compiler
applies as the default limit), so nesting multiplies and siblings add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)

Response = dict[str, Any]


@dataclass(frozen=True)
class DocumentLimits:
    max_tokens: int
    max_aliases: int
    max_root_fields: int
    max_fields: int
    max_depth: int
    max_cost: int
    max_rows: int

    @classmethod
    def of(cls, settings: Any) -> DocumentLimits:
        return cls(settings.max_query_tokens, settings.max_query_aliases, settings.max_root_fields,
                   settings.max_query_fields, settings.max_query_depth, settings.max_query_cost, settings.max_rows)


def refusal(message: str, limit: str, path: str = "$") -> Response:
    """A Hasura-shaped error for a document over a limit: the code clients know, and which limit."""
    return {"message": message, "extensions": {"path": path, "code": "validation-failed", "limit": limit}}


def _fragments(definitions: Any) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}


def count_aliases(definitions: Any) -> int:
    """Aliases written in the document (each node once; a fragment counts where it is written)."""
    total = 0
    stack: list[SelectionSetNode] = [d.selection_set for d in definitions
                                     if isinstance(d, (OperationDefinitionNode, FragmentDefinitionNode))]
    while stack:
        selection_set = stack.pop()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.alias is not None:
                    total += 1
                if sel.selection_set is not None:
                    stack.append(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                stack.append(sel.selection_set)
    return total


def count_fields(definitions: Any, cap: int) -> int:
    """Field selections of the document's operations, each fragment counted at every spread (as
    validation sees them); spreads and inline fragments count too, so nested spreads of empty
    fragments cannot multiply the walk. Stops once past `cap` (the answer is then cap + 1)."""
    fragments = _fragments(definitions)
    total = 0
    stack: list[tuple[SelectionSetNode, frozenset[str]]] = [
        (d.selection_set, frozenset()) for d in definitions if isinstance(d, OperationDefinitionNode)]
    while stack:
        selection_set, seen = stack.pop()
        for sel in selection_set.selections:
            total += 1
            if total > cap:
                return total
            if isinstance(sel, FieldNode):
                if sel.selection_set is not None:
                    stack.append((sel.selection_set, seen))
            elif isinstance(sel, InlineFragmentNode):
                stack.append((sel.selection_set, seen))
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in fragments and name not in seen:
                    stack.append((fragments[name].selection_set, seen | {name}))
    return total


def root_fields(selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode],
                seen: frozenset[str] = frozenset()) -> int:
    count = 0
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            count += 0 if sel.name.value.startswith("__") else 1
        elif isinstance(sel, InlineFragmentNode):
            count += root_fields(sel.selection_set, fragments, seen)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments and sel.name.value not in seen:
            count += root_fields(fragments[sel.name.value].selection_set, fragments, seen | {sel.name.value})
    return count


def check_syntax(definitions: Any, limits: DocumentLimits) -> list[Response]:
    """Alias, field and root-field caps: cheap checks that must pass before validation runs."""
    aliases = count_aliases(definitions)
    if aliases > limits.max_aliases:
        return [refusal(f"the query has {aliases} aliases; the limit is {limits.max_aliases}", "aliases")]
    if count_fields(definitions, limits.max_fields) > limits.max_fields:
        return [refusal(f"the query selects more than {limits.max_fields} fields (fragments counted at each "
                        f"spread), the limit", "fields")]
    fragments = _fragments(definitions)
    for definition in definitions:
        if isinstance(definition, OperationDefinitionNode):
            roots = root_fields(definition.selection_set, fragments)
            if roots > limits.max_root_fields:
                return [refusal(f"the operation has {roots} root fields; the limit is {limits.max_root_fields}",
                                "root_fields")]
    return []


def _unwrap(type_: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        if isinstance(type_, GraphQLList):
            is_list = True
        type_ = type_.of_type
    return type_, is_list


class _Cost:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any], max_rows: int, cap: int) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_rows = max_rows
        self.cap = cap

    def rows(self, field: FieldNode) -> int:
        for arg in field.arguments or ():
            if arg.name.value != "limit":
                continue
            value: Any = None
            if isinstance(arg.value, IntValueNode):
                value = int(arg.value.value)
            elif isinstance(arg.value, VariableNode):
                value = self.variables.get(arg.value.name.value)
            if isinstance(value, int) and value >= 0:
                return min(value, self.max_rows)
        return self.max_rows

    def selection(self, parent: Any, selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
        if selection_set is None or not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                definition = parent.fields.get(name)
                if definition is None or name.startswith("__"):
                    continue
                named, is_list = _unwrap(definition.type)
                if sel.selection_set is None:
                    continue  # a scalar: read with its row
                inner = 1 + self.selection(named, sel.selection_set, seen)
                total += inner * (self.rows(sel) if is_list else 1)
            elif isinstance(sel, InlineFragmentNode):
                target = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                total += self.selection(target, sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                fragment = self.fragments.get(sel.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selection(target, fragment.selection_set, seen | {sel.name.value})
            if total > self.cap:
                return total  # already refused: stop multiplying
        return total


def estimate_cost(schema: GraphQLSchema, definitions: Any, operation: OperationDefinitionNode,
                  variables: dict[str, Any] | None, limits: DocumentLimits) -> int:
    root: Any = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    walker = _Cost(schema, _fragments(definitions), variables or {}, limits.max_rows, limits.max_cost)
    return walker.selection(root, operation.selection_set, frozenset())


def check_cost(schema: GraphQLSchema, definitions: Any, operation: OperationDefinitionNode,
               variables: dict[str, Any] | None, limits: DocumentLimits) -> list[Response]:
    cost = estimate_cost(schema, definitions, operation, variables, limits)
    if cost > limits.max_cost:
        shown = f"more than {limits.max_cost}" if cost > limits.max_cost * 1000 else str(cost)
        return [refusal(f"the query's estimated cost ({shown} rows in the worst case) exceeds the limit of "
                        f"{limits.max_cost}; add a smaller \"limit\" to its list fields", "cost")]
    return []


__all__ = ["DocumentLimits", "check_cost", "check_syntax", "count_aliases", "count_fields", "estimate_cost",
           "refusal", "root_fields"]
