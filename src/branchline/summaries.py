"""How history rows become a run summary; shared by the SDK (live view) and the store (saved view).

Rules follow wandb: each committed row sets every leaf key's summary to its latest value; a logged
`None` removes the key; `define_metric(summary=...)` turns a key's summary into a dict of aggregates;
an explicit summary assignment drops the key's aggregation until it is defined again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from branchline.errors import UsageError

__all__ = ["MetricDef", "SummaryState", "SUMMARY_OPS", "flatten", "set_path", "del_path", "parse_summary_ops"]

SUMMARY_OPS = ("min", "max", "mean", "first", "last", "none")


def parse_summary_ops(summary: str | None) -> tuple[str, ...]:
    if summary is None:
        return ()
    if not isinstance(summary, str):
        raise UsageError("define_metric(summary=...) takes a comma-separated string such as 'min,max'.")
    ops: list[str] = []
    for raw in summary.split(","):
        op = raw.strip().lower()
        if op == "copy":
            op = "last"
        if not op:
            continue
        if op not in SUMMARY_OPS:
            raise UsageError(
                f"Unknown summary op {raw.strip()!r} in define_metric; use any of {', '.join(SUMMARY_OPS)}."
            )
        if op not in ops:
            ops.append(op)
    return tuple(ops)


@dataclass
class MetricDef:
    """One `define_metric` definition; `name` ends in `*` for a glob."""

    name: str
    step_metric: str | None = None
    step_sync: bool = False
    hidden: bool = False
    summary: tuple[str, ...] = ()

    @property
    def is_glob(self) -> bool:
        return self.name.endswith("*")

    def merged(self, other: MetricDef) -> MetricDef:
        """wandb's non-overwrite merge: ops are unioned, flags only switch on."""
        ops = list(self.summary)
        ops.extend(op for op in other.summary if op not in ops)
        return MetricDef(
            name=self.name,
            step_metric=other.step_metric or self.step_metric,
            step_sync=self.step_sync or other.step_sync,
            hidden=self.hidden or other.hidden,
            summary=tuple(ops),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "step_metric": self.step_metric,
            "step_sync": self.step_sync,
            "hidden": self.hidden,
            "summary": list(self.summary),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricDef:
        return cls(
            name=str(data["name"]),
            step_metric=data.get("step_metric"),
            step_sync=bool(data.get("step_sync")),
            hidden=bool(data.get("hidden")),
            summary=tuple(data.get("summary") or ()),
        )


@dataclass
class Aggregate:
    """Running min/max/mean/first/last of one key."""

    min: float | None = None
    max: float | None = None
    sum: float = 0.0
    count: int = 0
    first: Any = None
    has_first: bool = False
    last: Any = None

    def add(self, value: Any) -> None:
        if not self.has_first:
            self.first = value
            self.has_first = True
        self.last = value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        number = float(value)
        if math.isnan(number):
            return
        self.min = number if self.min is None else min(self.min, number)
        self.max = number if self.max is None else max(self.max, number)
        self.sum += number
        self.count += 1

    def view(self, ops: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for op in ops:
            if op == "min" and self.min is not None:
                out["min"] = _as_number(self.min)
            elif op == "max" and self.max is not None:
                out["max"] = _as_number(self.max)
            elif op == "mean" and self.count:
                out["mean"] = self.sum / self.count
            elif op == "first" and self.has_first:
                out["first"] = self.first
            elif op == "last" and self.has_first:
                out["last"] = self.last
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "max": self.max,
            "sum": self.sum,
            "count": self.count,
            "first": self.first,
            "has_first": self.has_first,
            "last": self.last,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Aggregate:
        return cls(
            **{k: data.get(k) for k in ("min", "max", "first", "last")},
            sum=float(data.get("sum") or 0.0),
            count=int(data.get("count") or 0),
            has_first=bool(data.get("has_first")),
        )


def _as_number(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def flatten(row: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Yield (path, leaf value) for every leaf of a nested row."""
    for key, value in row.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value and not value.get("_type"):
            yield from flatten(value, path)
        else:
            yield path, value


def set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict) or child.get("_type"):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def del_path(target: dict[str, Any], path: tuple[str, ...]) -> None:
    node = target
    parents: list[tuple[dict[str, Any], str]] = []
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return
        parents.append((node, part))
        node = child
    node.pop(path[-1], None)
    # Drop parents left empty so a removed nested leaf leaves no `{}` behind.
    while parents and not node:
        parent, part = parents.pop()
        parent.pop(part, None)
        node = parent


@dataclass
class SummaryState:
    """The summary of one incarnation plus what it needs to keep updating it."""

    summary: dict[str, Any] = field(default_factory=dict)
    defs: dict[str, MetricDef] = field(default_factory=dict)
    aggregates: dict[str, Aggregate] = field(default_factory=dict)
    # Keys whose aggregation an explicit summary write switched off.
    explicit: set[str] = field(default_factory=set)
    last_values: dict[str, Any] = field(default_factory=dict)  # for step_sync

    # -- definitions -------------------------------------------------------------
    def define(self, metric: MetricDef, overwrite: bool = False) -> MetricDef:
        current = self.defs.get(metric.name)
        merged = metric if (overwrite or current is None) else current.merged(metric)
        self.defs[metric.name] = merged
        self.explicit.discard(metric.name)
        # A glob also refreshes concrete keys it already produced.
        if merged.is_glob:
            prefix = merged.name[:-1]
            for name in list(self.defs):
                if name != merged.name and not name.endswith("*") and name.startswith(prefix):
                    self.defs[name] = merged if overwrite else self.defs[name].merged(merged)
                    self.defs[name].name = name
        return merged

    def definition_for(self, flat_key: str) -> MetricDef | None:
        found = self.defs.get(flat_key)
        if found is not None or flat_key.startswith("_"):
            return found
        for name, metric in self.defs.items():
            if metric.is_glob and flat_key.startswith(name[:-1]):
                concrete = MetricDef(flat_key, metric.step_metric, metric.step_sync, metric.hidden, metric.summary)
                self.defs[flat_key] = concrete
                return concrete
        return None

    @property
    def has_rules(self) -> bool:
        return bool(self.defs)

    # -- rows ---------------------------------------------------------------------
    def step_sync_items(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Step-metric values to add to a row that has a metric but not its step metric."""
        extra: dict[str, Any] = {}
        if not self.defs:
            return extra
        present = {".".join(path) for path, _ in flatten(row)}
        for flat in present:
            metric = self.definition_for(flat)
            if metric is None or not metric.step_metric or not metric.step_sync:
                continue
            if metric.step_metric not in present and metric.step_metric not in extra:
                extra[metric.step_metric] = self.last_values.get(metric.step_metric, 0)
        return extra

    def apply_row(self, row: Mapping[str, Any]) -> None:
        if not self.defs:
            # Without define_metric rules every leaf just takes its latest value.
            summary = self.summary
            for key, value in row.items():
                if type(value) is dict and value and not value.get("_type"):
                    for path, leaf in flatten(value, (key,)):
                        if leaf is None:
                            del_path(summary, path)
                        else:
                            set_path(summary, path, leaf)
                elif value is None:
                    summary.pop(key, None)
                else:
                    summary[key] = value
            return
        for path, value in flatten(row):
            flat = ".".join(path)
            if self.defs:
                self.last_values[flat] = value
                metric = None if flat in self.explicit else self.definition_for(flat)
            else:
                metric = None
            if metric is not None and metric.summary:
                if "none" in metric.summary:
                    continue
                agg = self.aggregates.get(flat)
                if agg is None:
                    agg = self.aggregates[flat] = Aggregate()
                agg.add(value)
                set_path(self.summary, path, agg.view(metric.summary))
            elif value is None:
                del_path(self.summary, path)
            else:
                set_path(self.summary, path, value)

    # -- explicit edits -------------------------------------------------------------
    def set_explicit(self, path: tuple[str, ...], value: Any) -> None:
        flat = ".".join(path)
        self.explicit.add(flat)
        self.aggregates.pop(flat, None)
        set_path(self.summary, path, value)

    def remove(self, path: tuple[str, ...]) -> None:
        flat = ".".join(path)
        self.aggregates.pop(flat, None)
        del_path(self.summary, path)

    # -- persistence ------------------------------------------------------------------
    def rules_json(self) -> dict[str, Any]:
        return {
            "defs": [m.to_json() for m in self.defs.values()],
            "aggregates": {k: a.to_json() for k, a in self.aggregates.items()},
            "explicit": sorted(self.explicit),
            "last_values": self.last_values,
        }

    @classmethod
    def restore(cls, summary: Mapping[str, Any], rules: Mapping[str, Any]) -> SummaryState:
        state = cls(summary=dict(summary))
        for data in rules.get("defs") or ():
            metric = MetricDef.from_json(data)
            state.defs[metric.name] = metric
        state.aggregates = {k: Aggregate.from_json(v) for k, v in (rules.get("aggregates") or {}).items()}
        state.explicit = set(rules.get("explicit") or ())
        state.last_values = dict(rules.get("last_values") or {})
        return state
