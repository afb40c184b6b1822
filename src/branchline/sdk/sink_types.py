"""What every sink is: the protocol the writer applies records through, and its declared capabilities.

Kept apart from sdk/sink.py (which picks a sink) so a sink module can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from branchline.rejects import Rejected
from branchline.runspec import RunSpec, RunStart

__all__ = ["Sink", "SinkCapabilities"]


@dataclass(frozen=True)
class SinkCapabilities:
    """What a sink offers besides applying records: declared by the sink, never probed for."""

    #: It writes into a `Store` in this process (`sink.store`): offline artifacts, footer sparklines.
    local_store: bool = False
    #: Run files' contents go to it beside the records (`sink.upload_run_files`): a server.
    run_files: bool = False


class Sink(Protocol):
    capabilities: SinkCapabilities
    #: Records the sink set aside as unstorable since the caller last emptied the list.
    rejected: list[Rejected]

    def begin_run(self, spec: RunSpec) -> RunStart: ...
    def apply(self, session_id: str, records: Sequence[Sequence[Any]]) -> int: ...
    def heartbeat(self, incarnation_id: str) -> bool: ...
    def mark_crashed(self, incarnation_id: str, session_id: str | None = None) -> None: ...
    def mark_killed(self, incarnation_id: str) -> None: ...
    def close(self) -> None: ...
