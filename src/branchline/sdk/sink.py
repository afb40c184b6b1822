"""Sinks: where the writer applies journal records. The embedded store now, a server later."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from branchline.rejects import Rejected
from branchline.runspec import RunSpec, RunStart
from branchline.sdk.sink_types import Sink, SinkCapabilities

if TYPE_CHECKING:
    from branchline.store import Store

__all__ = ["Sink", "SinkCapabilities", "LocalSink", "local_store", "make_sink", "run_file_uploader"]


class _StoreSink(Sink, Protocol):
    store: Store


class _RunFilesSink(Sink, Protocol):
    def upload_run_files(self, start: RunStart, files: list[tuple[str, Path, str]]) -> int: ...


def local_store(sink: Sink) -> Store | None:
    """The store `sink` writes into in this process, when it declares one."""
    return cast(_StoreSink, sink).store if sink.capabilities.local_store else None


def run_file_uploader(sink: Sink) -> _RunFilesSink | None:
    """`sink` as a taker of run files' contents, when it declares it is one."""
    return cast(_RunFilesSink, sink) if sink.capabilities.run_files else None


class LocalSink:
    """Applies records straight to a store (SQLite file or PostgreSQL)."""

    capabilities = SinkCapabilities(local_store=True)

    def __init__(self, store_url: str, crash_timeout: float = 300.0) -> None:
        from branchline.store import open_store

        self.store = open_store(store_url, crash_timeout=crash_timeout)
        self.rejected: list[Rejected] = []

    def begin_run(self, spec: RunSpec) -> RunStart:
        return self.store.begin_run(spec)

    def apply(self, session_id: str, records: Sequence[Sequence[Any]]) -> int:
        return self.store.apply(session_id, records, rejected=self.rejected)

    def heartbeat(self, incarnation_id: str) -> bool:
        return self.store.heartbeat(incarnation_id)

    def mark_crashed(self, incarnation_id: str, session_id: str | None = None) -> None:
        self.store.mark_crashed(incarnation_id, session_id)

    def mark_killed(self, incarnation_id: str) -> None:
        """The writer terminated a training process that ignored a stop (sdk/stopping.py)."""
        from branchline.store.stops import NOTE_ESCALATED

        self.store.mark_killed(incarnation_id, NOTE_ESCALATED)

    def close(self) -> None:
        self.store.close()


def make_sink(target: dict[str, Any]) -> Sink:
    """A sink from a JSON-able description: {"store_url": ...} or {"base_url": ..., "api_key": ...}."""
    if target.get("base_url"):
        from branchline.sdk.http_sink import HttpSink

        # The writer process gets its key through the environment (see sdk/lifecycle.py).
        api_key = target.get("api_key") or os.environ.get("BRANCHLINE_WRITER_API_KEY")
        sink: Sink = HttpSink(target["base_url"], api_key)
        return sink
    return LocalSink(target["store_url"], float(target.get("crash_timeout", 300.0)))
