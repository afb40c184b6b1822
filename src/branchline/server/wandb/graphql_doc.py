"""GraphQL without a schema: parse a document, pick the operation, project an answer through it.

The wandb client sends named operations against W&B's own (private) schema. We never validate
against a schema: a resolver builds a plain dict for the operation, richer than any one client
asks, and `project` keeps exactly what the selection set names — aliases, fragments and
`@include`/`@skip` honoured, and a field we do not know answered as null. A field a newer client
adds therefore degrades to null instead of failing the whole request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

__all__ = ["Operation", "QueryError", "field_args", "introspects_only", "parse_operation", "project"]

#: A value resolved lazily: called only when the selection asks for the field.
Lazy = Callable[[], Any]


class QueryError(ValueError):
    """The document cannot be parsed, or names no operation we can pick."""


@dataclass(frozen=True)
class Operation:
    """One operation of a document, with the fragments it may spread and its variables."""

    name: str
    kind: str  # "query" | "mutation" | "subscription"
    selection: SelectionSetNode
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]


def parse_operation(query: str, operation_name: str | None, variables: Mapping[str, Any] | None) -> Operation:
    """The operation `operation_name` of `query` (or its only operation)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError as exc:
        raise QueryError(f"The GraphQL document does not parse: {exc.message}") from None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if operation_name:
        picked = [op for op in operations if op.name is not None and op.name.value == operation_name]
    else:
        picked = operations if len(operations) == 1 else []
    if not picked:
        raise QueryError(f"The document has no operation named {operation_name!r}.")
    op = picked[0]
    name = operation_name or (op.name.value if op.name is not None else "")
    # A variable the client leaves out takes its declared default (`$includeAliases: Boolean = true`).
    values = {
        d.variable.name.value: value_from_ast_untyped(d.default_value)
        for d in op.variable_definitions or ()
        if d.default_value is not None
    }
    values.update(variables or {})
    return Operation(name, op.operation.value, op.selection_set, fragments, values)


def _included(node: Any, variables: Mapping[str, Any]) -> bool:
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("include", "skip"):
            continue
        args = {a.name.value: value_from_ast_untyped(a.value, dict(variables)) for a in directive.arguments or ()}
        if bool(args.get("if")) != (name == "include"):
            return False
    return True


#: The interfaces of W&B's schema our answers' types implement (a fragment on one spreads into them).
INTERFACES: dict[str, frozenset[str]] = {
    "ArtifactSequence": frozenset({"ArtifactCollection"}),
    "ArtifactPortfolio": frozenset({"ArtifactCollection"}),
}


def _matches(condition: str | None, typename: str | None) -> bool:
    if condition is None or typename is None or condition == typename:
        return True
    return condition in INTERFACES.get(typename, frozenset())


def _fields(selection: SelectionSetNode, op: Operation, typename: str | None) -> list[FieldNode]:
    """The fields a selection set names, with fragments spread in (by type condition when known)."""
    out: list[FieldNode] = []
    for node in selection.selections:
        if not _included(node, op.variables):
            continue
        if isinstance(node, FieldNode):
            out.append(node)
            continue
        if isinstance(node, FragmentSpreadNode):
            fragment = op.fragments.get(node.name.value)
            if fragment is None:
                continue
            condition: str | None = fragment.type_condition.name.value
            inner = fragment.selection_set
        elif isinstance(node, InlineFragmentNode):
            condition = node.type_condition.name.value if node.type_condition is not None else None
            inner = node.selection_set
        else:
            continue
        if _matches(condition, typename):
            out.extend(_fields(inner, op, typename))
    return out


def field_args(node: FieldNode, variables: Mapping[str, Any]) -> dict[str, Any]:
    """A field's arguments with variables substituted."""
    return {a.name.value: value_from_ast_untyped(a.value, dict(variables)) for a in node.arguments or ()}


def project(value: Any, selection: SelectionSetNode | None, op: Operation) -> Any:
    """`value` trimmed to `selection`: dicts by field (alias as the key), lists element-wise.

    A dict value may hold a callable: it is called (with the field's arguments when it takes
    any) only if selected, so expensive parts are computed only for the clients that ask.
    """
    if callable(value):
        value = value()
    if selection is None or value is None:
        return value
    if isinstance(value, list | tuple):
        return [project(item, selection, op) for item in value]
    if not isinstance(value, Mapping):
        return None  # a scalar where the client expects an object: answer null, do not fail
    typename = value.get("__typename")
    out: dict[str, Any] = {}
    for node in _fields(selection, op, typename if isinstance(typename, str) else None):
        key = node.alias.value if node.alias is not None else node.name.value
        item = value.get(node.name.value)
        if callable(item) and getattr(item, "wants_args", False):
            item = item(field_args(node, op.variables))
        out[key] = project(item, node.selection_set, op)
    return out


def introspects_only(op: Operation) -> bool:
    """Whether every root field the operation selects is an introspection field (`__type`, …)."""
    fields = _fields(op.selection, op, None)
    return bool(fields) and all(node.name.value.startswith("__") for node in fields)
