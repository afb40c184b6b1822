"""Translating wandb's MongoDB-style run filters and order strings into SQL.

The database evaluates every filter (SQLite's JSON functions, PostgreSQL's JSONB operators); nothing
here loops over runs in Python. Statements plug into `reads.run_select()`, which joins runs, their
project and their current incarnation.

Semantics (also in docs/api.md):

* A filter document is a dict; several entries are ANDed. `$and`, `$or`, `$nor` take a list of
  documents. A field maps to an operator dict (`{"$gt": 1}`) or to a plain value (`$eq`).
* `config.<path>` and `summary_metrics.<path>` reach into nested JSON with dots (`\\.` is a literal
  dot). Comparisons are type-strict as in MongoDB: a number only matches numbers, a string only
  strings, `True` only booleans. `$eq: None` matches a missing key or a JSON null; `$ne`/`$nin`
  match runs without the key; `$exists` is true for any present key, null included. wandb's
  `config.<key>.value` form reads `config.<key>` unless the config really has a `value` key there.
* `tags`: `$eq`/`$ne` test membership of one tag, `$in`/`$nin` any of several, `$regex` and the
  order operators match when any tag does; `$exists` means "has at least one tag".
* Text columns (`state`, `display_name`, `name`, `group`, `jobType`, `host`, `username`, `notes`)
  compare as strings in code-point order; `$exists` means non-empty.
* `createdAt`/`heartbeatAt` take ISO-8601 strings (naive means UTC) or epoch seconds; `duration`
  is the active time in seconds (pauses between a finish and a resume excluded) and `runtime` the
  wall-clock time from start to end (pauses included).
* `private` is true or false (`$eq`/`$ne`): whether the run is private to its entity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from branchline.errors import UsageError
from branchline.store.filter_checks import check_depth, check_key, check_operand, check_regex
from branchline.store.schema import incarnations, runs

__all__ = [
    "FILTER_FIELDS",
    "OPERATORS",
    "ORDER_FIELDS",
    "compile_filter",
    "compile_order",
    "split_path",
    "validate_query",
]

_LOGICAL = ("$and", "$or", "$nor")
_COMPARE = ("$gt", "$gte", "$lt", "$lte")
OPERATORS = ("$and", "$or", "$nor", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex")

_TEXT_COLUMNS: dict[str, Any] = {
    "state": incarnations.c.state,
    "display_name": runs.c.name,
    "displayName": runs.c.name,
    "name": runs.c.run_id,
    "id": runs.c.run_id,
    "group": runs.c.run_group,
    "jobType": runs.c.job_type,
    "job_type": runs.c.job_type,
    "host": runs.c.host,
    "username": runs.c.username,
    "notes": runs.c.notes,
}
_TIME_COLUMNS: dict[str, Any] = {
    "createdAt": runs.c.created_at,
    "created_at": runs.c.created_at,
    "heartbeatAt": incarnations.c.heartbeat_at,
    "heartbeat_at": incarnations.c.heartbeat_at,
}
_NUMBER_COLUMNS: dict[str, Any] = {
    "duration": incarnations.c.runtime - incarnations.c.paused,
    "runtime": incarnations.c.runtime,
}
_BOOL_COLUMNS: dict[str, Any] = {"private": runs.c.private}
_JSON_COLUMNS: dict[str, Any] = {
    "config": incarnations.c.config,
    "summary_metrics": incarnations.c.summary,
    "summary": incarnations.c.summary,
}

#: Every field a filter may name (plus `config.<key>` and `summary_metrics.<key>`).
FILTER_FIELDS = (
    *_TEXT_COLUMNS,
    *_TIME_COLUMNS,
    *_NUMBER_COLUMNS,
    *_BOOL_COLUMNS,
    "tags",
    "config.<key>",
    "summary_metrics.<key>",
)
#: Every key `order` may name, after an optional `+` (ascending) or `-` (descending).
ORDER_FIELDS = (*_TIME_COLUMNS, *_NUMBER_COLUMNS, *_TEXT_COLUMNS, "config.<key>", "summary_metrics.<key>")


def _known_fields() -> str:
    return ", ".join(FILTER_FIELDS)


# -- values ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: float, field: str) -> float:
    if isinstance(value, float) and math.isnan(value):
        raise UsageError(f"Filter on {field!r}: NaN never compares equal; it cannot be a filter value.")
    return value


def _timestamp(value: Any, field: str) -> float:
    """Epoch seconds from an ISO-8601 string, a datetime or a number."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(f"Filter on {field!r}: {value!r} is not an ISO-8601 date or time.") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.timestamp()
    raise UsageError(f"Filter on {field!r} takes an ISO-8601 string or epoch seconds, got {value!r}.")


def split_path(path: str) -> list[str]:
    """`a.b\\.c` → ["a", "b.c"]: dots separate nested keys, a backslash keeps one literal."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in path:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if any(part == "" for part in parts):
        raise UsageError(f"{path!r} has an empty key; write nested keys as a.b.c.")
    return parts


# -- JSON paths --------------------------------------------------------------------------------


class _JsonPath:
    """A nested key of a JSON column, in the dialect's own JSON functions.

    `kind` is the value's type as a never-NULL string, so every predicate built on it is
    two-valued and NOT / $ne / $nin behave (SQL's NULL would make `NOT x` drop the row).
    """

    def __init__(self, column: Any, keys: list[str], alt_keys: list[str] | None, dialect: str) -> None:
        self.dialect = dialect
        if dialect == "postgresql":
            self.column = column
            path: Any = self._pg_path(keys)
            if alt_keys is not None:
                alt = self._pg_path(alt_keys)
                path = case((column.op("#>", return_type=JSONB)(path).is_not(None), path), else_=alt)
            self.node: Any = column.op("#>", return_type=JSONB)(path)
            self.text_node: Any = column.op("#>>", return_type=Text)(path)
            self.raw_kind: Any = func.jsonb_typeof(self.node, type_=String)
        else:
            if any('"' in key for key in keys):
                raise UsageError(f"JSON keys cannot contain a double quote: {'.'.join(keys)!r}.")
            # A document SQLite's JSON parser rejects (NaN/Infinity tokens) would abort the whole
            # query; such a document reads as having no keys instead. The substring test spares the
            # common case a second parse (each JSON function call parses the document again).
            self.column = case(
                (and_(func.instr(column, "NaN") == 0, func.instr(column, "Infinity") == 0), column),
                (func.json_valid(column) == 1, column),
                else_=None,
            )
            spath: Any = literal(self._sqlite_path(keys), String)
            if alt_keys is not None:
                alt_s = literal(self._sqlite_path(alt_keys), String)
                spath = case((func.json_type(self.column, spath).is_not(None), spath), else_=alt_s)
            self.node = func.json_extract(self.column, spath)
            self.text_node = self.node
            self.raw_kind = func.json_type(self.column, spath, type_=String)
        self.kind: Any = func.coalesce(self.raw_kind, literal("missing", String))

    @staticmethod
    def _pg_path(keys: list[str]) -> Any:
        return cast(postgresql.array([literal(k, Text) for k in keys]), postgresql.ARRAY(Text))

    @staticmethod
    def _sqlite_path(keys: list[str]) -> str:
        return "$" + "".join(f'."{key}"' for key in keys)

    _KINDS: ClassVar[dict[str, dict[str, tuple[str, ...]]]] = {
        "sqlite": {
            "number": ("integer", "real"),
            "string": ("text",),
            "bool": ("true", "false"),
            "null": ("null",),
            "missing": ("missing",),
            "array": ("array",),
            "object": ("object",),
        },
        "postgresql": {
            "number": ("number",),
            "string": ("string",),
            "bool": ("boolean",),
            "null": ("null",),
            "missing": ("missing",),
            "array": ("array",),
            "object": ("object",),
        },
    }

    def is_(self, *kinds: str) -> ColumnElement[bool]:
        names = [name for kind in kinds for name in self._KINDS[self._family][kind]]
        return self.kind.in_(names)  # type: ignore[no-any-return]

    @property
    def _family(self) -> str:
        return "postgresql" if self.dialect == "postgresql" else "sqlite"

    def number(self) -> Any:
        """The value as a number; only meaningful where `is_("number")`."""
        if self.dialect == "postgresql":
            # The guard matters: PostgreSQL would fail casting a string value to a number.
            return case((self.is_("number"), cast(self.text_node, Float)), else_=None)
        return self.node  # SQLite compares any value with a number without error

    def text(self) -> Any:
        """The value as text; only meaningful where `is_("string")`."""
        value = case((self.is_("string"), self.text_node), else_=None)
        return value.collate("C") if self.dialect == "postgresql" else value

    def boolean(self, wanted: bool) -> ColumnElement[bool]:
        if self.dialect == "postgresql":
            return and_(self.is_("bool"), self.text_node == ("true" if wanted else "false"))
        return self.kind == ("true" if wanted else "false")  # type: ignore[no-any-return]

    def json_equals(self, value: list[Any] | dict[str, Any]) -> ColumnElement[bool]:
        kind = "array" if isinstance(value, list) else "object"
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
        if self.dialect == "postgresql":
            return and_(self.is_(kind), self.node == cast(literal(encoded, Text), JSONB))
        return and_(self.is_(kind), self.node == func.json(literal(encoded, String)))

    def order_terms(self, descending: bool) -> list[ColumnElement[Any]]:
        """ORDER BY terms: a type rank (numbers, strings, booleans, lists/objects, then missing or
        null last in both directions), then the value. The rank is a simple CASE so the type is
        computed once per row."""
        family = self._KINDS[self._family]
        ranks = ["number", "string", "bool", "array", "object"]
        position = {"number": 0, "string": 1, "bool": 2, "array": 3, "object": 3}
        whens = {
            name: (3 - position[kind]) if descending else position[kind] for kind in ranks for name in family[kind]
        }
        rank = case(whens, value=self.kind, else_=4)

        def directed(term: Any) -> ColumnElement[Any]:
            return term.desc() if descending else term.asc()  # type: ignore[no-any-return]

        if self.dialect != "postgresql":
            # json_extract gives numbers (booleans as 0/1), text, or JSON text for lists and
            # objects; within one rank SQLite orders them as wanted.
            return [rank.asc(), directed(self.node)]
        number = case(
            (self.is_("number"), cast(self.text_node, Float)),
            (self.is_("bool"), case((self.text_node == "true", 1.0), else_=0.0)),
            else_=None,
        )
        text = case(
            (self.is_("string"), self.text_node),
            (self.is_("array", "object"), cast(self.node, Text)),
            else_=None,
        ).collate("C")
        return [rank.asc(), directed(number), directed(text)]


def _json_path(field: str, dialect: str) -> _JsonPath | None:
    prefix, _, rest = field.partition(".")
    column = _JSON_COLUMNS.get(prefix)
    if column is None or not rest:
        return None
    keys = split_path(rest)
    alt = keys[:-1] if prefix == "config" and len(keys) > 1 and keys[-1] == "value" else None
    return _JsonPath(column, keys, alt, dialect)


# -- operators ---------------------------------------------------------------------------------


def _expect_list(op: str, field: str, value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise UsageError(f"{op} on {field!r} takes a list, got {value!r}.")
    return list(value)


def _expect_bool(op: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{op} on {field!r} takes true or false, got {value!r}.")
    return value


def _expect_str(op: str, field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{op} on {field!r} takes a string, got {value!r}.")
    return value


def _compare(op: str, left: Any, right: Any) -> ColumnElement[bool]:
    if op == "$gt":
        return left > right  # type: ignore[no-any-return]
    if op == "$gte":
        return left >= right  # type: ignore[no-any-return]
    if op == "$lt":
        return left < right  # type: ignore[no-any-return]
    return left <= right  # type: ignore[no-any-return]


def _json_op(path: _JsonPath, field: str, op: str, value: Any) -> ColumnElement[bool]:
    if op == "$eq":
        if value is None:
            return path.is_("missing", "null")
        if isinstance(value, bool):
            return path.boolean(value)
        if _is_number(value):
            return and_(path.is_("number"), path.number() == _finite(value, field))
        if isinstance(value, str):
            return and_(path.is_("string"), path.text() == value)
        if isinstance(value, list | dict):
            return path.json_equals(value)
        raise UsageError(f"Filter on {field!r}: cannot compare with {value!r}.")
    if op == "$ne":
        return not_(_json_op(path, field, "$eq", value))
    if op in _COMPARE:
        if _is_number(value):
            return and_(path.is_("number"), _compare(op, path.number(), _finite(value, field)))
        if isinstance(value, str):
            return and_(path.is_("string"), _compare(op, path.text(), value))
        raise UsageError(f"{op} on {field!r} takes a number or a string, got {value!r}.")
    if op == "$in":
        items = _expect_list(op, field, value)
        return or_(false(), *(_json_op(path, field, "$eq", item) for item in items))
    if op == "$nin":
        return not_(_json_op(path, field, "$in", value))
    if op == "$exists":
        present = not_(path.is_("missing"))
        return present if _expect_bool(op, field, value) else not_(present)
    if op == "$regex":
        return and_(path.is_("string"), path.text().regexp_match(_expect_str(op, field, value)))
    raise _unknown_operator(op, field)


def _text_op(column: Any, field: str, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    def text_value(item: Any) -> str:
        if item is None:
            return ""  # unset text columns hold ""
        return _expect_str(op, field, item)

    ordered = column.collate("C") if dialect == "postgresql" else column
    if op == "$eq":
        return column == text_value(value)  # type: ignore[no-any-return]
    if op == "$ne":
        return column != text_value(value)  # type: ignore[no-any-return]
    if op in _COMPARE:
        return _compare(op, ordered, _expect_str(op, field, value))
    if op == "$in":
        return column.in_([text_value(item) for item in _expect_list(op, field, value)])  # type: ignore[no-any-return]
    if op == "$nin":
        return column.not_in([text_value(item) for item in _expect_list(op, field, value)])  # type: ignore[no-any-return]
    if op == "$exists":
        present = column != ""
        return present if _expect_bool(op, field, value) else not_(present)  # type: ignore[no-any-return]
    if op == "$regex":
        return column.regexp_match(_expect_str(op, field, value))  # type: ignore[no-any-return]
    raise _unknown_operator(op, field)


def _number_op(
    column: Any, field: str, op: str, value: Any, convert: Callable[[Any, str], float]
) -> ColumnElement[bool]:
    if op == "$eq":
        return column == convert(value, field)  # type: ignore[no-any-return]
    if op == "$ne":
        return column != convert(value, field)  # type: ignore[no-any-return]
    if op in _COMPARE:
        return _compare(op, column, convert(value, field))
    if op == "$in":
        return column.in_([convert(item, field) for item in _expect_list(op, field, value)])  # type: ignore[no-any-return]
    if op == "$nin":
        return column.not_in([convert(item, field) for item in _expect_list(op, field, value)])  # type: ignore[no-any-return]
    if op == "$exists":
        return true() if _expect_bool(op, field, value) else false()
    if op == "$regex":
        raise UsageError(f"$regex does not apply to {field!r}, which is not text.")
    raise _unknown_operator(op, field)


def _bool_op(column: Any, field: str, op: str, value: Any) -> ColumnElement[bool]:
    if op in ("$eq", "$ne"):
        if not isinstance(value, bool):
            raise UsageError(f"Filter on {field!r} takes true or false, got {value!r}.")
        return (column == value) if op == "$eq" else (column != value)  # type: ignore[no-any-return]
    if op == "$exists":
        return true() if _expect_bool(op, field, value) else false()
    raise UsageError(f"Filter on {field!r} takes $eq or $ne with true or false, not {op}.")


def _plain_number(value: Any, field: str) -> float:
    if not _is_number(value):
        raise UsageError(f"Filter on {field!r} takes a number, got {value!r}.")
    return float(_finite(value, field))


def _tags_op(field: str, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    column = runs.c.tags
    if dialect == "postgresql":
        elements = func.jsonb_array_elements_text(column).table_valued("value")
        count = func.jsonb_array_length(column)
    else:
        elements = func.json_each(column).table_valued("value")
        count = func.json_array_length(column)
    element = elements.c.value.collate("C") if dialect == "postgresql" else elements.c.value

    def any_tag(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(select(literal(1)).select_from(elements).where(condition))

    def tag_value(item: Any) -> str:
        if not isinstance(item, str):
            raise UsageError(f"{op} on 'tags' compares with tag strings, got {item!r}.")
        return item

    if op == "$eq":
        if dialect == "postgresql":
            return column.op("?", return_type=postgresql.BOOLEAN)(literal(tag_value(value), Text))
        return any_tag(elements.c.value == tag_value(value))
    if op == "$ne":
        return not_(_tags_op(field, "$eq", value, dialect))
    if op in _COMPARE:
        return any_tag(_compare(op, element, tag_value(value)))
    if op == "$in":
        wanted = [tag_value(item) for item in _expect_list(op, field, value)]
        if not wanted:
            return false()
        if dialect == "postgresql":
            return column.op("?|", return_type=postgresql.BOOLEAN)(
                cast(postgresql.array([literal(w, Text) for w in wanted]), postgresql.ARRAY(Text))
            )
        return any_tag(elements.c.value.in_(wanted))
    if op == "$nin":
        return not_(_tags_op(field, "$in", value, dialect))
    if op == "$exists":
        present = count > 0
        return present if _expect_bool(op, field, value) else not_(present)
    if op == "$regex":
        return any_tag(elements.c.value.regexp_match(_expect_str(op, field, value)))
    raise _unknown_operator(op, field)


def _unknown_operator(op: str, field: str) -> UsageError:
    return UsageError(f"Unknown filter operator {op!r} on {field!r}. Supported: {', '.join(OPERATORS)}.")


def _field_condition(field: str, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    check_operand(field, value)
    if op == "$regex":
        check_regex(field, _expect_str(op, field, value))
    if op in _LOGICAL:
        raise UsageError(f"{op} combines whole filters; it cannot be applied to the field {field!r}.")
    if op not in OPERATORS:
        raise _unknown_operator(op, field)
    if field in _TEXT_COLUMNS:
        return _text_op(_TEXT_COLUMNS[field], field, op, value, dialect)
    if field in _TIME_COLUMNS:
        return _number_op(_TIME_COLUMNS[field], field, op, value, _timestamp)
    if field in _NUMBER_COLUMNS:
        return _number_op(_NUMBER_COLUMNS[field], field, op, value, _plain_number)
    if field in _BOOL_COLUMNS:
        return _bool_op(_BOOL_COLUMNS[field], field, op, value)
    if field == "tags":
        return _tags_op(field, op, value, dialect)
    path = _json_path(field, dialect)
    if path is None:
        raise UsageError(f"Unknown filter field {field!r}. Known fields: {_known_fields()}.")
    return _json_op(path, field, op, value)


def _compile(filters: Any, dialect: str, depth: int = 0) -> ColumnElement[bool]:
    check_depth(depth)
    if not isinstance(filters, Mapping):
        raise UsageError(f"A filter must be a dict (a JSON object), got {filters!r}.")
    clauses: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        if not isinstance(key, str):
            raise UsageError(f"Filter keys must be strings, got {key!r}.")
        check_key(key)
        if key.startswith("$"):
            if key not in _LOGICAL:
                raise UsageError(
                    f"Unknown filter operator {key!r} at the top of a filter; "
                    f"combine filters with {', '.join(_LOGICAL)}."
                )
            if not isinstance(value, list | tuple) or not value:
                raise UsageError(f"{key} takes a non-empty list of filters, got {value!r}.")
            parts = [_compile(part, dialect, depth + 1) for part in value]
            if key == "$and":
                clauses.append(and_(true(), *parts))
            elif key == "$or":
                clauses.append(or_(false(), *parts))
            else:
                clauses.append(not_(or_(false(), *parts)))
            continue
        if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
            if not all(isinstance(k, str) and k.startswith("$") for k in value):
                raise UsageError(
                    f"Filter on {key!r} mixes operators and plain keys: {dict(value)!r}. "
                    "Use either {'$op': value, ...} or a plain value."
                )
            for op, operand in value.items():
                clauses.append(_field_condition(key, op, operand, dialect))
        else:
            clauses.append(_field_condition(key, "$eq", dict(value) if isinstance(value, Mapping) else value, dialect))
    return and_(true(), *clauses)


def compile_filter(filters: Mapping[str, Any], dialect: str) -> ColumnElement[bool]:
    """A WHERE clause for `reads.run_select()`; raises UsageError naming any unknown field or operator."""
    return _compile(filters, dialect)


def _order_column(field: str, dialect: str) -> list[Any] | None:
    if field in _TIME_COLUMNS:
        return [_TIME_COLUMNS[field]]
    if field in _NUMBER_COLUMNS:
        return [_NUMBER_COLUMNS[field]]
    if field in _TEXT_COLUMNS:
        column = _TEXT_COLUMNS[field]
        return [column.collate("C") if dialect == "postgresql" else column]
    return None


def compile_order(order: str, dialect: str) -> list[ColumnElement[Any]]:
    """ORDER BY terms for `[+|-]key`; runs without a JSON key sort last either way; ties break on the run."""
    if not isinstance(order, str) or not order.strip(" +-"):
        raise UsageError(f"order must be a string like '+created_at' or '-summary_metrics.loss', got {order!r}.")
    text = order.strip()
    descending = text.startswith("-")
    field = text[1:] if text[:1] in "+-" else text

    def directed(term: Any) -> ColumnElement[Any]:
        return term.desc() if descending else term.asc()  # type: ignore[no-any-return]

    columns = _order_column(field, dialect)
    if columns is not None:
        return [*(directed(c) for c in columns), directed(runs.c.pk)]
    path = _json_path(field, dialect)
    if path is None:
        raise UsageError(f"Cannot order runs by {field!r}. Known keys: {', '.join(ORDER_FIELDS)}.")
    return [*path.order_terms(descending), directed(runs.c.pk)]


def validate_query(filters: Mapping[str, Any] | None, order: str, dialect: str = "sqlite") -> None:
    """Raise UsageError now for a malformed filter or order, before any query runs."""
    if filters:
        compile_filter(filters, dialect)
    compile_order(order, dialect)
