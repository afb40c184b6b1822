"""Keyword options of store reads, declared once for the interface and its implementations."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["ChartOptions", "ListQuery", "StepRange", "step_bounds"]


class StepRange(TypedDict, total=False):
    """Which part of a history a read covers: the stream (0 history, 1 system metrics) and steps."""

    stream: int
    min_step: int | None
    max_step: int | None


class ChartOptions(StepRange, total=False):
    """A chart read: the x-axis (`_step` or another key of the stream) and how many buckets to keep."""

    x: str
    buckets: int


class ListQuery(TypedDict, total=False):
    """How `list_runs` filters, orders and pages (defaults: all runs, oldest first)."""

    filters: dict[str, Any] | None
    order: str
    limit: int | None
    offset: int


def step_bounds(bounds: StepRange, unbounded: int) -> tuple[int, int, int]:
    """(stream, lowest step, highest step) of a range; an open end becomes ±`unbounded`."""
    low, high = bounds.get("min_step"), bounds.get("max_step")
    return bounds.get("stream", 0), -unbounded if low is None else low, unbounded if high is None else high
