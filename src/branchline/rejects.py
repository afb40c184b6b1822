"""Records the store cannot hold: found by halving a failed batch, set aside, and reported once.

One value no column or JSON field can take (bytes in an old journal, a key a server refuses) must
never fail its whole batch forever: the store, the writer, `branchline sync` and the server all apply
through `isolate`, which stores everything else and describes the record at fault (`Rejected`:
the run's step and key, and why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from branchline.records import RecordError, check_record, spec_of
from branchline.vocab import RecordKind

__all__ = ["Rejected", "isolate", "rejection", "set_aside"]


@dataclass(frozen=True)
class Rejected:
    """A record the store could not hold: skipped (never retried forever) and reported once."""

    sequence: int
    kind: str
    step: int | None
    key: str | None
    reason: str

    def message(self, run: str) -> str:
        where = f"step {self.step}" if self.step is not None else f"record {self.sequence}"
        key = f", key {self.key!r}" if self.key else ""
        return f"run {run}: the {self.kind} record at {where}{key} could not be stored and was skipped: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "kind": self.kind, "step": self.step, "key": self.key, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rejected:
        return cls(int(data["sequence"]), str(data["kind"]), data.get("step"), data.get("key"), str(data["reason"]))


def rejection(record: Any, exc: BaseException) -> Rejected:
    """Describe a record that failed to store: its step and the key at fault, where they can be found."""
    seq, kind = int(record[0]), record[1]
    spec = spec_of(kind)
    name = spec.kind.name if spec is not None else f"kind-{kind}"
    step = record[2] if spec is not None and spec.kind == RecordKind.HISTORY and type(record[2]) is int else None
    key: str | None = None
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    try:
        check_record(list(record))
    except RecordError as bad:
        key = bad.field.removeprefix("record.").removeprefix("data.").removeprefix("sample.")
        reason = bad.message.removeprefix("record.")
    except Exception:  # a record too broken to check: the store's own message stands
        pass
    return Rejected(seq, name, step, key, reason)


def isolate(
    apply: Callable[[list[Any]], int],
    records: list[Any],
    *,
    bad: Callable[[BaseException], bool],
    rejected: Callable[[Any, BaseException], int],
) -> int:
    """Apply `records`, setting aside each record whose own error `bad` says is the record's fault.

    A batch that fails is split in halves (in order, so sequences still increase) until the record at
    fault stands alone; `rejected(record, error)` then reports it and answers the sequence now handled.
    Any other error (a full disk, a lost connection) propagates: those records are retried later.
    """
    try:
        return apply(records)
    except Exception as exc:
        if not bad(exc):
            raise
        if len(records) == 1:
            return rejected(records[0], exc)
    half = len(records) // 2
    first = isolate(apply, records[:half], bad=bad, rejected=rejected)
    return max(first, isolate(apply, records[half:], bad=bad, rejected=rejected))


def set_aside(into: list[Rejected]) -> Callable[[Any, BaseException], int]:
    """An `isolate` callback that describes each refused record into `into` and answers its sequence."""

    def rejected(record: Any, exc: BaseException) -> int:
        into.append(rejection(record, exc))
        return int(record[0])

    return rejected
