"""Parts of a public `Run` that behave like wandb's objects: its summary and its files."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from branchline.api.backend import Backend
from branchline.errors import UsageError

__all__ = ["METADATA_ALIASES", "File", "RunSummary"]

#: wandb's name for the run metadata file -> the name it is stored under here.
METADATA_ALIASES = {"wandb-metadata.json": "branchline-metadata.json"}


class RunSummary(dict[str, Any]):
    """`run.summary`: a dict whose `update()` and `del` persist (wandb's HTTPSummary does the same).

    `run.summary["k"] = v` changes it locally; `run.summary.update()` (or `run.update()`) stores it.
    `del run.summary["k"]` stores the removal at once.
    """

    def __init__(self, values: Mapping[str, Any], save: Callable[[], None]) -> None:
        super().__init__(copy.deepcopy(dict(values)))
        self._save = save

    def update(self, key_vals: Any = None, overwrite: bool = True, **kwargs: Any) -> None:  # type: ignore[override]
        """Apply `key_vals` (and keyword values), then store the whole summary."""
        for key, value in {**dict(key_vals or {}), **kwargs}.items():
            if overwrite or key not in self:
                self[key] = value
        self._save()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._save()

    @property
    def _json_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-like data (wandb's attribute of that name)."""
        return copy.deepcopy(dict(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(self), memo)


class File:
    """A file saved with a run, like wandb's `File`: `name`, `size`, `url`, `download()`, `delete()`.

    Indexing by the keys `run.files()` used to return (`file["path"]`, `["size"]`, `["sha256"]`,
    `["updated_at"]`) still works.
    """

    def __init__(self, backend: Backend, incarnation_id: str, row: dict[str, Any], name: str | None = None) -> None:
        self._backend = backend
        self._incarnation_id = incarnation_id
        self._stored = str(row["path"])  # the name it is stored under
        self.name = name or self._stored
        self.path = self._stored
        self.size = int(row["size"])
        self.sha256 = str(row["sha256"])
        self.updated_at = float(row["updated_at"])
        self._row = row

    @property
    def url(self) -> str | None:
        """Where the content is: the server's file URL, or a `file://` URL into a local store."""
        file_url = getattr(self._backend, "_file_url", None)
        if callable(file_url):
            return str(file_url(self._incarnation_id, self._stored))
        files_dir = getattr(self._backend, "files_dir", None)
        if files_dir is None:
            return None
        return (Path(files_dir) / self._incarnation_id / self._stored).resolve().as_uri()

    @property
    def md5(self) -> str:
        """wandb's content hash field; here the sha256 the content is checked against."""
        return self.sha256

    def __getitem__(self, key: str) -> Any:
        return self._row[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._row.get(key, default)

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False) -> Path:
        """Write the file under `root` (keeping its name); refuses to overwrite unless `replace`.

        `exist_ok=True` returns an existing file as it is (wandb's flag).
        """
        target = Path(root) / self.name
        if target.exists() and not replace:
            if exist_ok:
                return target
            raise UsageError(f"{target} exists; pass replace=True to overwrite it.")
        data = self._backend.read_file(self._incarnation_id, self._stored)
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise UsageError(f"The stored content of {self.name!r} does not match its sha256; it was not written.")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def delete(self) -> None:
        """Remove the file from the run: it leaves `run.files()` and its content is deleted
        (stored content another file or artifact still uses stays for them)."""
        if self._backend.delete_file(self._incarnation_id, self._stored) is None:
            raise UsageError(f"Cannot delete {self.name!r}: the run has no such file (already deleted?).")

    def __repr__(self) -> str:
        return f"<File {self.name} ({self.size} bytes)>"
