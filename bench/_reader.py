"""The read side the benches time: `branchline.Api` when importable, else the Store (and say so)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from _gen import ENTITY, url_of
from branchline.store import Store, open_store
from branchline.store.history import minmax_indices

__all__ = ["Reader"]


class Reader:
    """One store, read through `Api` (preferred) or the `Store` facade (fallback)."""

    def __init__(self, db: Path, *, force_store: bool = False) -> None:
        self.url = url_of(db)
        self.store: Store | None = None
        self.api: Any = None
        self.why = ""
        if not force_store:
            os.environ["BRANCHLINE_STORE"] = self.url
            try:
                from branchline import Api

                try:
                    self.api = Api(overrides={"entity": ENTITY, "store_url": self.url})
                except Exception:
                    self.api = Api(overrides={"entity": ENTITY})
            except Exception as exc:  # not written yet, or broken: measure the store instead
                self.why = f"{type(exc).__name__}: {exc}"
                self.api = None
        if self.api is None:
            self.store = open_store(self.url)

    @property
    def via(self) -> str:
        if self.api is not None:
            return "Api"
        return f"Store fallback (Api not importable: {self.why})" if self.why else "Store"

    def run(self, project: str, run_id: str) -> Any:
        if self.api is not None:
            return self.api.run(f"{ENTITY}/{project}/{run_id}")
        assert self.store is not None
        return self.store.require_run(ENTITY, project, run_id)

    def metric(self, run: Any, key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        if self.api is not None:
            steps, values = run.metric(key)
            return np.asarray(steps), np.asarray(values)
        assert self.store is not None
        steps, values = self.store.read_series(run.incarnation_id, key)
        return np.asarray(steps), np.asarray(values)

    def history(self, run: Any, samples: int, keys: list[str]) -> Any:
        """`run.history(samples=..., keys=...)`; the store fallback reads, downsamples, builds a frame."""
        if self.api is not None:
            return run.history(samples=samples, keys=keys)
        import pandas as pd

        assert self.store is not None
        columns: dict[str, Any] = {}
        steps: npt.NDArray[np.int64] | None = None
        for key in keys:
            s, v = self.store.read_series(run.incarnation_id, key)
            keep = minmax_indices(v, samples // 2)
            steps, columns[key] = s[keep], v[keep]
        return pd.DataFrame({"_step": steps, **columns})

    def runs_page(self, project: str, filters: dict[str, Any], order: str, per_page: int) -> list[Any]:
        """The first page of a filtered, sorted runs listing."""
        if self.api is not None:
            runs = self.api.runs(f"{ENTITY}/{project}", filters=filters, order=order, per_page=per_page)
            page: list[Any] = list(itertools.islice(runs, per_page))
            return page
        assert self.store is not None
        return list(self.store.list_runs(ENTITY, project, filters=filters, order=order, limit=per_page))

    def runs_count(self, project: str, filters: dict[str, Any]) -> int:
        if self.api is not None:
            return len(self.api.runs(f"{ENTITY}/{project}", filters=filters, per_page=50))
        assert self.store is not None
        return int(self.store.count_runs(ENTITY, project, filters=filters))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        os.environ.pop("BRANCHLINE_STORE", None)
