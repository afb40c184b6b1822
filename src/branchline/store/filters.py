"""Translating wandb's MongoDB-style run filters and order strings into SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, true

from branchline.errors import UsageError
from branchline.store.schema import runs

__all__ = ["compile_filter", "compile_order"]


def compile_filter(filters: dict[str, Any], dialect: str) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for field, value in filters.items():
        if field == "state":
            from branchline.store.schema import incarnations

            clauses.append(incarnations.c.state == value)
        else:
            raise UsageError(f"Unknown filter field {field!r}.")
    return and_(true(), *clauses)


def compile_order(order: str, dialect: str) -> list[ColumnElement[Any]]:
    desc = order.startswith("-")
    column = runs.c.created_at
    return [column.desc() if desc else column.asc(), runs.c.pk.desc() if desc else runs.c.pk.asc()]
