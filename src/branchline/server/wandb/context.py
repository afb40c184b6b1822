"""What a W&B protocol request works with: the store, the caller, and the run's streams.

A run the wandb client logs is an ordinary branchline run. Its data arrives as three independent
streams, each a writer session of the incarnation (store `stream_session`): `history` and
`events` (history lines and system-metrics lines, sequence = line offset + 1, so a replayed chunk
is skipped), and `control` (config, names, summary, exit: each a whole replacement, applied in
arrival order under a lock).
"""

from __future__ import annotations

import getpass
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from branchline.records import RecordError, check_record
from branchline.server.auth import Principal, check_access, sees_private_runs, visible_runs_filter
from branchline.server.errors import ApiError
from branchline.server.wandb.signing import Signer, signer_for
from branchline.store.interface import RunView, StoreInterface
from branchline.vocab import RecordKind

__all__ = ["WandbContext", "context_for", "input_of", "unwrap_config", "wrap_config"]

#: Summary and history keys the client manages itself.
SPECIAL_KEYS = frozenset({"_step", "_runtime", "_timestamp", "_wandb"})
_LOCK_GUARD = threading.Lock()
_log = logging.getLogger("branchline.server")


def input_of(variables: dict[str, Any]) -> dict[str, Any]:
    """The operation's arguments: its `input` object when it has one (both shapes exist), else the variables."""
    found = variables.get("input")
    return found if isinstance(found, dict) else variables


def unwrap_config(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The user's config and the client's `_wandb` metadata from UpsertBucket's `config` string."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}, {}
    if not isinstance(raw, dict):
        return {}, {}
    values: dict[str, Any] = {}
    for key, item in raw.items():
        values[key] = item["value"] if isinstance(item, dict) and "value" in item else item
    wandb = values.pop("_wandb", None)
    return values, wandb if isinstance(wandb, dict) else {}


def wrap_config(config: dict[str, Any], wandb: dict[str, Any] | None = None) -> str:
    """A config as the client reads it back: `{"key": {"value": ...}}`, as a JSON string."""
    wrapped = {key: {"value": value} for key, value in config.items()}
    if wandb is not None:
        wrapped["_wandb"] = {"value": wandb}
    return json.dumps(wrapped, allow_nan=True)


@dataclass
class WandbContext:
    """One request's view: the store, who calls, and the entity runs go to when none is named."""

    store: StoreInterface
    principal: Principal
    base_url: str
    signer: Signer
    control_lock: threading.Lock
    now: float = field(default_factory=time.time)
    #: The FastAPI app (its blob store, the artifact uploads in flight); None in unit tests.
    app: Any = None

    @property
    def default_entity(self) -> str:
        if self.principal.username:
            return self.principal.username
        try:
            return getpass.getuser() or "user"
        except Exception:  # no user name on this machine (a container): the SDK's default too
            return "user"

    def entity(self, value: Any) -> str:
        return value if isinstance(value, str) and value else self.default_entity

    def check(self, entity: str, project: str, *, write: bool = False) -> None:
        check_access(self.principal, entity, project, write=write)

    # -- run privacy: the REST routes' rule (server.auth), applied to every read of the protocol --
    def sees(self, run: RunView | None) -> RunView | None:
        """`run` if the caller may see it; a private run is None to readers outside its entity."""
        if run is None or not run.private or sees_private_runs(self.principal, run.entity):
            return run
        return None

    def visible_filters(self, entity: str, filters: dict[str, Any] | None) -> dict[str, Any] | None:
        """`filters` narrowed to the runs the caller may see (private runs left out for non-members)."""
        return visible_runs_filter(self.principal, entity, filters)

    def find_run(self, entity: str, project: str, run_id: str) -> RunView | None:
        """The run, or None when it does not exist or is private to an entity the caller is not in."""
        self.check(entity, project)
        return self.sees(self.store.get_run(entity, project, run_id))

    def require_run(self, entity: str, project: str, run_id: str, *, write: bool = False) -> RunView:
        self.check(entity, project, write=write)
        run = self.sees(self.store.get_run(entity, project, run_id))
        if run is None:
            raise ApiError(404, f"Run {entity}/{project}/{run_id} not found.", field="run")
        return run

    # -- the three streams ----------------------------------------------------------------------
    def stream_offset(self, incarnation_id: str, stream: str) -> int:
        """How many lines of `stream` the incarnation holds (the next offset the client sends)."""
        return self.store.applied_seq(self.store.stream_session(incarnation_id, stream)) or 0

    def apply_lines(self, incarnation_id: str, stream: str, records: Sequence[list[Any]]) -> None:
        """Apply records whose sequence is their line offset + 1 (a replayed line is skipped)."""
        good = _checked(records)
        if good:
            self.store.apply(self.store.stream_session(incarnation_id, stream), good)

    def apply_control(self, incarnation_id: str, records: Sequence[tuple[RecordKind, list[Any]]]) -> None:
        """Apply whole-replacement records (config, names, summary, exit) in order."""
        if not records:
            return
        with self.control_lock:
            session = self.store.stream_session(incarnation_id, "control")
            seq = (self.store.applied_seq(session) or 0) + 1
            batch = [[seq + i, int(kind), *fields] for i, (kind, fields) in enumerate(records)]
            good = _checked(batch)
            if good:
                self.store.apply(session, good)


def _checked(records: Sequence[list[Any]]) -> list[list[Any]]:
    """Records as the journal declaration cleans them; one it refuses is dropped (and logged)."""
    out: list[list[Any]] = []
    for record in records:
        try:
            out.append(check_record(record, "wandb"))
        except RecordError as exc:
            _log.warning("W&B protocol: a line was not stored: %s", exc.message)
    return out


def context_for(request: Request, principal: Principal) -> WandbContext:
    """The context of a request to the W&B routes."""
    store: StoreInterface | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    with _LOCK_GUARD:
        lock = getattr(request.app.state, "wandb_control_lock", None)
        if lock is None:
            lock = request.app.state.wandb_control_lock = threading.Lock()
    base = str(request.base_url).rstrip("/")
    return WandbContext(store, principal, base, signer_for(request.app), lock, app=request.app)
