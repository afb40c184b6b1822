"""The wandb client's tables: a run file of plain cells, the full table in a `run_table` artifact.

The wandb client logs a `wandb.Table` as a run file (`media/table/...table.json`) that holds the
plain cells only, and keeps the whole table, media cells as descriptors of files inside the
artifact, in a `run_table` artifact (`run-<run id>-<key>`, entry `<key>.table.json`). Its history
descriptor names that entry (`artifact_path: wandb-client-artifact://<client id>/<key>.table.json`).

The rules that find the full table are here, once, for `branchline.Api` (which reaches the
artifact through its public objects) and the server (which reads the store and blob storage
directly): each caller hands over the candidate entries and a way to read one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["CLIENT_ARTIFACT", "RUN_TABLE", "cells_match", "entry_name", "is_client_table", "pick_table"]

#: How the wandb client names the artifact entry a table lives in.
CLIENT_ARTIFACT = "wandb-client-artifact://"
#: The artifact type the wandb client keeps logged tables in.
RUN_TABLE = "run_table"

Entry = TypeVar("Entry")


def is_client_table(descriptor: Any) -> bool:
    """Whether a history value is a table the wandb client logged (its cells are in an artifact)."""
    return (
        isinstance(descriptor, dict)
        and descriptor.get("_type") == "table-file"
        and str(descriptor.get("artifact_path") or "").startswith(CLIENT_ARTIFACT)
    )


def entry_name(descriptor: Any) -> str | None:
    """The artifact entry a wandb client's table descriptor names (`<key>.table.json`), else None."""
    if not isinstance(descriptor, dict):
        return None
    where = str(descriptor.get("artifact_path") or "")
    if not where.startswith(CLIENT_ARTIFACT):
        return None
    name = where.removeprefix(CLIENT_ARTIFACT).partition("/")[2]
    return name or None


def cells_match(plain: dict[str, Any], full: dict[str, Any]) -> bool:
    """Whether the artifact's table `full` is the one whose plain cells the run file `plain` holds."""
    if plain.get("columns") != full.get("columns") or len(plain.get("data") or []) != len(full.get("data") or []):
        return False
    for plain_row, full_row in zip(plain["data"], full["data"], strict=True):
        for a, b in zip(plain_row, full_row, strict=False):
            if not (isinstance(b, dict) and "_type" in b) and a != b:
                return False
    return True


def pick_table(
    descriptor: dict[str, Any],
    plain: Any,
    candidates: Sequence[Entry],
    logged: Iterable[tuple[int, Any]],
    read: Callable[[Entry], bytes],
) -> dict[str, Any] | None:
    """The full table a wandb client's `descriptor` names, among `candidates`; None if none fits.

    `candidates` are the entries named `<key>.table.json` of the run's `run_table` artifact
    versions, in the order the run logged them; `logged` is the run's history of the key. When
    there are as many candidates as distinct tables the run logged under the key, the descriptor's
    place among those picks its version (tables whose plain cells are equal, an epoch's images
    differing, stay apart); else the first candidate whose plain cells match.
    """
    where = str(descriptor.get("artifact_path") or "")
    if not where.startswith(CLIENT_ARTIFACT) or not isinstance(plain, dict):
        return None
    chosen = list(candidates)
    if len(chosen) > 1:
        order = list(dict.fromkeys(str(v.get("artifact_path")) for _, v in logged if isinstance(v, dict)))
        if len(order) == len(chosen) and where in order:
            chosen = [chosen[order.index(where)]]
    for entry in chosen:
        try:
            full = json.loads(read(entry))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(full, dict) and cells_match(plain, full):
            return full
    return None
