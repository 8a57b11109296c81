"""A domain mutation of one root field run without graphql-core's executor, with the same answer.

graphql-core's executor costs more per request than the work of a small domain mutation such as
sendChatMessage (resolve info, argument maps, completion of every leaf through awaitables). A
document whose operation is one root field of the listed domain mutations, with scalar arguments
and a selection of the result's plain scalar fields (aliases and `__typename` included, no
fragments or directives), is planned once per prepared document; each request then coerces the
variables and arguments with graphql-core's own functions, calls the Strawberry resolver as
Strawberry would (argument names converted, `info` whose only member is `context`), and shapes
the result with the schema's own serialisers. Errors are graphql-core's objects (`located_error`
with the same path), so `execution.format_error` words them as it does on the executor's path.
Any other document returns None here and takes the executor.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    get_nullable_type,
    is_non_null_type,
    located_error,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.types.field import StrawberryField

from .context import Context
from .operations import DIRECT_MUTATIONS, ONE_STATEMENT_MUTATIONS

# graphql.execute's defaults, which the executor's path runs with.
_MAX_COERCION_ERRORS = 50
_CACHE_SIZE = 512
_DEFINITION = "strawberry-definition"  # where Strawberry keeps a graphql-core object's own definition


@dataclass(frozen=True)
class _Leaf:
    key: str  # the response key (the alias, or the field's name)
    node: FieldNode
    attr: str | None  # the Python attribute; None for __typename
    scalar: GraphQLScalarType | None
    non_null: bool


@dataclass(frozen=True)
class DirectPlan:
    schema: GraphQLSchema
    operation: OperationDefinitionNode
    key: str
    node: FieldNode
    field: GraphQLField
    resolver: Callable[..., Awaitable[Any]]
    info_name: str
    arguments: dict[str, str]  # GraphQL argument name -> the resolver's parameter
    object_type: GraphQLObjectType
    non_null: bool
    leaves: tuple[_Leaf, ...]
    # The resolver makes exactly one statement (ONE_STATEMENT_MUTATIONS): execution may commit it on its own.
    # The tables that statement changes, which the server signals itself (None: not one statement).
    one_statement: tuple[str, ...] | None


@dataclass(frozen=True)
class _Info:
    """What the listed resolvers read of Strawberry's Info: the request's context, nothing else."""

    context: Context


_plans: OrderedDict[int, tuple[GraphQLSchema, OperationDefinitionNode, DirectPlan | None]] = OrderedDict()


def plan_for(schema: GraphQLSchema, operation: OperationDefinitionNode | None) -> DirectPlan | None:
    """The direct plan of a prepared operation (kept per operation node, as the document cache keeps
    the node per document text), or None: the executor serves it."""
    if operation is None or operation.operation != OperationType.MUTATION:
        return None
    key = id(operation)
    found = _plans.get(key)
    if found is not None and found[0] is schema and found[1] is operation:
        _plans.move_to_end(key)
        return found[2]
    planned = _plan(schema, operation)
    _plans[key] = (schema, operation, planned)
    if len(_plans) > _CACHE_SIZE:
        _plans.popitem(last=False)
    return planned


def _plan(schema: GraphQLSchema, operation: OperationDefinitionNode) -> DirectPlan | None:
    root = schema.mutation_type
    selections = operation.selection_set.selections
    if root is None or operation.directives or len(selections) != 1:
        return None
    node = selections[0]
    if not isinstance(node, FieldNode) or node.directives or node.selection_set is None:
        return None
    name = node.name.value
    field = root.fields.get(name)
    # A generated field of the same name hides the domain one (schema._merge): its definition is not
    # Strawberry's.
    definition = field.extensions.get(_DEFINITION) if field is not None else None
    if (field is None or name not in DIRECT_MUTATIONS or not isinstance(definition, StrawberryField)
            or definition.extensions or definition.base_resolver is None):
        return None
    resolver = definition.base_resolver
    function = resolver.wrapped_func
    if (not resolver.is_async or resolver.info_parameter is None or resolver.self_parameter is None
            or isinstance(function, (staticmethod, classmethod))):
        return None
    arguments: dict[str, str] = {}
    for arg_name, arg in field.args.items():
        # Scalars only: Strawberry hands them to the resolver as coerced (input objects, enums and
        # lists it converts, which the executor's path would do).
        if not isinstance(get_nullable_type(arg.type), GraphQLScalarType):
            return None
        arguments[arg_name] = arg.extensions[_DEFINITION].python_name
    object_type = get_nullable_type(field.type)
    if not isinstance(object_type, GraphQLObjectType) or object_type.is_type_of is not None:
        return None
    leaves: list[_Leaf] = []
    for sel in node.selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.directives or sel.selection_set is not None or sel.arguments:
            return None
        key = sel.alias.value if sel.alias else sel.name.value
        if any(leaf.key == key for leaf in leaves):  # the executor merges these: leave it the case
            return None
        if sel.name.value == "__typename":
            leaves.append(_Leaf(key, sel, None, None, True))
            continue
        sub = object_type.fields.get(sel.name.value)
        sub_definition = sub.extensions.get(_DEFINITION) if sub is not None else None
        if sub is None or not isinstance(sub_definition, StrawberryField) or not sub_definition.is_basic_field:
            return None
        scalar = get_nullable_type(sub.type)
        if not isinstance(scalar, GraphQLScalarType):
            return None
        leaves.append(_Leaf(key, sel, sub_definition.python_name, scalar, is_non_null_type(sub.type)))
    return DirectPlan(schema, operation, node.alias.value if node.alias else name, node, field,
                      function, resolver.info_parameter.name, arguments, object_type,
                      is_non_null_type(field.type), tuple(leaves), ONE_STATEMENT_MUTATIONS.get(name))


async def run_direct(plan: DirectPlan, ctx: Context, variables: dict[str, Any] | None) -> ExecutionResult:
    """The plan's operation for `ctx`, as graphql-core's `execute` would answer it."""
    coerced = get_variable_values(plan.schema, plan.operation.variable_definitions or (), variables or {},
                                  max_errors=_MAX_COERCION_ERRORS)
    if isinstance(coerced, list):
        return ExecutionResult(None, coerced)
    path: list[str | int] = [plan.key]
    try:
        args = get_argument_values(plan.field, plan.node, coerced) if plan.field.args or plan.node.arguments else {}
        kwargs = {plan.arguments[name]: value for name, value in args.items()}
        kwargs[plan.info_name] = _Info(ctx)
        result = await plan.resolver(None, **kwargs)
    except Exception as exc:
        return ExecutionResult(None, [located_error(exc, [plan.node], path)])
    if result is None:
        if plan.non_null:
            error = TypeError(f"Cannot return null for non-nullable field {plan.schema.mutation_type}."
                              f"{plan.node.name.value}.")
            return ExecutionResult(None, [located_error(error, [plan.node], path)])
        return ExecutionResult({plan.key: None})
    shaped: dict[str, Any] = {}
    for leaf in plan.leaves:
        try:
            shaped[leaf.key] = _leaf(plan.object_type, leaf, result)
        except Exception as exc:
            return ExecutionResult(None, [located_error(exc, [leaf.node], [plan.key, leaf.key])])
    return ExecutionResult({plan.key: shaped})


def _leaf(object_type: GraphQLObjectType, leaf: _Leaf, source: Any) -> Any:
    if leaf.scalar is None:
        return object_type.name
    value = getattr(source, leaf.attr or "")
    if value is None:
        if leaf.non_null:
            raise TypeError(f"Cannot return null for non-nullable field {object_type.name}.{leaf.node.name.value}.")
        return None
    coerced = leaf.scalar.coerce_output_value(value)
    if coerced is None or coerced is Undefined:
        raise TypeError(f"Expected `{leaf.scalar}.coerce_output_value({value!r})` to return non-nullable value")
    return coerced


__all__ = ["DirectPlan", "plan_for", "run_direct"]
