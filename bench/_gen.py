"""Generating big stores fast, straight through the store (no SDK, no journal), cached under .bench/.

A cached store is a closed SQLite file named after its parameters and the schema revision; it is
built in a temporary file and renamed into place, so an interrupted build is never reused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from _common import CACHE
from branchline.runspec import RunSpec
from branchline.store import Store, open_store
from branchline.store.schema import SCHEMA_REVISION
from branchline.vocab import RecordKind

__all__ = ["ENTITY", "cached_store", "copy_store", "make_spec", "series", "url_of", "write_run"]

ENTITY = "bench"
_HISTORY = int(RecordKind.HISTORY)
_EXIT = int(RecordKind.EXIT)


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def make_spec(project: str, run_id: str, **fields: Any) -> RunSpec:
    """A RunSpec with fresh incarnation and session ids."""
    return RunSpec(
        entity=ENTITY,
        project=project,
        run_id=run_id,
        incarnation_id=secrets.token_hex(8),
        session_id=secrets.token_hex(8),
        host="bench",
        started_at=time.time(),
        **fields,
    )


def series(n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """A noisy decaying loss curve of n points (value at step i is series[i])."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.float64)
    return np.asarray(2.0 / (1.0 + steps / 1000.0) + 0.05 * rng.standard_normal(n), dtype=np.float64)


def write_run(
    store: Store,
    spec: RunSpec,
    steps: npt.NDArray[np.int64],
    columns: dict[str, npt.NDArray[np.float64]],
    *,
    batch: int = 50_000,
) -> None:
    """Begin the run, apply history rows {key: columns[key][i]} at steps[i], then an exit record."""
    store.begin_run(spec)
    keys = list(columns)
    seq = 0
    t0 = 1.7e9
    for offset in range(0, len(steps), batch):
        part = steps[offset : offset + batch].tolist()
        cols = [columns[k][offset : offset + batch].tolist() for k in keys]
        records: list[Sequence[Any]] = []
        for i, step in enumerate(part):
            seq += 1
            records.append(
                [seq, _HISTORY, step, t0 + step * 1e-3, step * 1e-3, {k: c[i] for k, c in zip(keys, cols, strict=True)}]
            )
        store.apply(spec.session_id, records)
    seq += 1
    last = int(steps[-1]) if len(steps) else 0
    store.apply(spec.session_id, [[seq, _EXIT, 0, "finished", last * 1e-3]])


def cached_store(name: str, build: Callable[[Store], None]) -> Path:
    """The path of `.bench/cache/<name>-<schema>.db`, building it with `build(store)` if missing."""
    folder = CACHE / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{SCHEMA_REVISION}.db"
    if path.exists():
        return path
    tmp = folder / f".{name}-{os.getpid()}.building.db"
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    print(f"building {path.name} (cached for later runs) ...", flush=True)
    t0 = time.perf_counter()
    store = open_store(url_of(tmp))
    try:
        build(store)
    finally:
        store.close()
    for side in (Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        side.unlink(missing_ok=True)
    tmp.rename(path)
    print(f"built {path.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def copy_store(source: Path, target: Path) -> Path:
    """Copy a cached store file to `target` (a fresh, writable copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
