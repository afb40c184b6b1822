"""What a filter may hold before it becomes SQL: values every database can compare.

PostgreSQL refuses a NUL character in text and integers past 64 bits in its comparisons, both
backends fail on a regular expression that does not compile, and a filter nested thousands deep
exhausts the recursion of whoever compiles it. Each is a `UsageError` naming the field here,
before a query runs (store/filters.py calls these while compiling).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from branchline.errors import UsageError

__all__ = ["MAX_FILTER_DEPTH", "check_depth", "check_key", "check_operand", "check_regex"]

#: How deep a filter may nest (`$and`/`$or`/`$nor` and lists or objects in operands): far past
#: any filter a person writes, far short of Python's recursion limit.
MAX_FILTER_DEPTH = 64
_INT64 = 2**63
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str, what: str) -> None:
    if "\x00" in value:
        raise UsageError(f"{what} contains a NUL character (\\u0000), which the store cannot compare.")
    if _SURROGATE.search(value):
        raise UsageError(f"{what} is not valid Unicode (a lone surrogate).")


def check_depth(depth: int) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise UsageError(f"The filter is nested too deep: more than {MAX_FILTER_DEPTH} levels.")


def check_key(key: str) -> None:
    """A field name or operator of a filter."""
    _text(key, f"The filter key {key[:80]!r}")


def check_operand(field: str, value: Any, depth: int = 0) -> None:
    """An operand compared with `field`: storable text, 64-bit integers, bounded nesting."""
    check_depth(depth)
    if isinstance(value, str):
        _text(value, f"The filter value for {field!r}")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise UsageError(f"Filter on {field!r}: {value} is outside the 64-bit integer range the store compares.")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                _text(key, f"A key in the filter value for {field!r}")
            check_operand(field, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_operand(field, item, depth + 1)


def check_regex(field: str, pattern: str) -> str:
    """A `$regex` pattern that compiles (the database would fail the whole query on it)."""
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise UsageError(f"$regex on {field!r} is not a valid regular expression: {exc}.") from None
    return pattern
