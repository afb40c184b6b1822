"""`branchline.Artifact`: a draft you fill with files, then a logged, immutable version."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from branchline.artifacts.backend import USED, ArtifactBackend, CommitRequest
from branchline.artifacts.errors import ArtifactFinalizedError, ArtifactIntegrityError, ArtifactNotLoggedError
from branchline.artifacts.manifest import ArtifactManifest, ArtifactManifestEntry
from branchline.artifacts.naming import validate_aliases, validate_name, validate_type
from branchline.artifacts.pending import PendingCommit
from branchline.artifacts.references import reference_entries
from branchline.artifacts.staging import BlobQuery, Capture, check_policy
from branchline.artifacts.transfer import (
    VersionFetcher,
    default_download_root,
    download_entries,
    upload_missing,
    verify_directory,
    verify_stored,
)
from branchline.errors import UsageError
from branchline.store.artifacts import EntryRow, VersionRow

__all__ = ["Artifact", "PendingCommit", "default_download_root"]


def _clean_path(name: str) -> str:
    """An entry path: relative, '/'-separated, with no '..' (so downloads stay inside their root)."""
    text = str(name).replace(os.sep, "/")
    pure = PurePosixPath(text)
    parts = [p for p in pure.parts if p not in ("", ".")]
    if pure.is_absolute() or not parts or ".." in parts:
        raise UsageError(f"Invalid path {name!r} inside an artifact: use a relative path without '..'.")
    return "/".join(parts)


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise UsageError(f"Artifact metadata must be a dict, got {type(metadata).__name__}.")
    try:
        out: dict[str, Any] = json.loads(json.dumps(metadata))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Artifact metadata must be JSON-serializable: {exc}") from None
    return out


class Artifact:
    """Versioned, deduplicated files with lineage (wandb's `Artifact`).

    Build a draft with `add_file`, `add_dir`, `new_file` and `add_reference`, then
    `run.log_artifact(artifact)`. Once logged it is immutable: read it with `download`, `files`,
    `verify`; edit only `aliases`, `description` and `metadata`, then `save()`.
    `incremental`, `use_as` and `storage_region` are accepted for wandb compatibility and unused.
    """

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
        storage_region: str | None = None,
    ) -> None:
        self._name = validate_name(name)
        self._type = validate_type(type)
        self._description = description
        self._metadata = _check_metadata(metadata)
        self._manifest = ArtifactManifest()
        self._aliases: list[str] = []
        self._row: VersionRow | None = None
        self._backend: ArtifactBackend | None = None
        self._entries_loaded = True
        self._final = False
        self._deleted = False
        self._tmpdir: str | None = None
        self._pending: PendingCommit | None = None
        self._capture: Capture | None = None  # copies of files added with policy="mutable"

    # -- construction from the store --------------------------------------------------------------
    @classmethod
    def _from_row(cls, row: VersionRow, backend: ArtifactBackend) -> Artifact:
        art = cls(row.name, row.type, row.description, row.metadata)
        art._bind(row, backend)
        art._entries_loaded = False
        return art

    def _bind(self, row: VersionRow, backend: ArtifactBackend) -> None:
        self._row = row
        self._backend = backend
        self._final = True
        self._aliases = list(row.aliases)
        self._description = row.description
        self._metadata = dict(row.metadata)
        fetcher = VersionFetcher(backend, f"{row.name}:{row.version}")
        for entry in self._manifest.entries.values():
            entry.fetcher = fetcher

    def _settle(self) -> None:
        """Wait for a background commit of this artifact, if one is running (as wandb does)."""
        if self._pending is not None:
            self._pending.wait()

    def _logged(self, what: str) -> tuple[VersionRow, ArtifactBackend]:
        self._settle()
        if self._row is None or self._backend is None:
            raise ArtifactNotLoggedError(
                f"Artifact {self._name!r} is not logged yet: `{what}` needs run.log_artifact() or run.use_artifact()."
            )
        if self._deleted:
            raise UsageError(f"Artifact {self.qualified_name} was deleted.")
        return self._row, self._backend

    def _check_editable(self) -> None:
        if self._final:
            raise ArtifactFinalizedError(
                f"Artifact {self._name!r} is logged and immutable; create a new Artifact to change its files."
            )

    # -- identity -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """`name` for a draft, `name:vN` once logged (as in wandb)."""
        self._settle()
        return self._name if self._row is None else f"{self._name}:{self._row.version}"

    @property
    def source_name(self) -> str:
        """The artifact's name without a version."""
        return self._name

    @property
    def type(self) -> str:
        return self._type

    @property
    def version(self) -> str:
        return self._logged("version")[0].version

    @property
    def id(self) -> str | None:
        self._settle()
        return None if self._row is None else self._row.id

    @property
    def entity(self) -> str:
        return self._logged("entity")[0].entity

    @property
    def project(self) -> str:
        return self._logged("project")[0].project

    @property
    def qualified_name(self) -> str:
        row = self._logged("qualified_name")[0]
        return f"{row.entity}/{row.project}/{row.name}:{row.version}"

    @property
    def state(self) -> str:
        return "DELETED" if self._deleted else ("PENDING" if self._row is None else "COMMITTED")

    @property
    def created_at(self) -> float | None:
        self._settle()
        return None if self._row is None else self._row.created_at

    @property
    def description(self) -> str | None:
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        self._settle()  # an edit made while committing would be lost when the version binds
        self._description = value

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._settle()
        self._metadata = _check_metadata(value)

    @property
    def aliases(self) -> list[str]:
        """The version's aliases; edit the list (or assign) and call `save()` to store the change."""
        self._settle()
        return self._aliases

    @aliases.setter
    def aliases(self, value: list[str]) -> None:
        self._settle()
        self._aliases = validate_aliases(value)

    @property
    def manifest(self) -> ArtifactManifest:
        self._load_entries()
        return self._manifest

    @property
    def digest(self) -> str:
        """sha256 over the sorted (path, entry digest) pairs: equal digests mean equal contents."""
        if self._row is not None:
            return self._row.digest
        return self._manifest.digest()

    @property
    def size(self) -> int:
        return self._row.size if self._row is not None else self._manifest.size

    @property
    def file_count(self) -> int:
        return self._row.file_count if self._row is not None else len(self._manifest)

    def is_draft(self) -> bool:
        return self._row is None

    def __repr__(self) -> str:
        row = self._row  # not qualified_name: repr must not wait for a commit in progress
        where = self._name
        if row is not None and not self._deleted:
            where = f"{row.entity}/{row.project}/{row.name}:{row.version}"
        return f"<Artifact {where} type={self._type} state={self.state}>"

    # -- building a draft ------------------------------------------------------------------------
    def _put(self, entry: ArtifactManifestEntry, overwrite: bool) -> ArtifactManifestEntry:
        existing = self._manifest.entries.get(entry.path)
        if existing is not None and existing.digest != entry.digest and not overwrite:
            self._captured().release(entry.local_path)
            raise ValueError(
                f"The artifact already has a file at {entry.path!r} with different contents; "
                "pass overwrite=True (merge=True for add_dir) to replace it."
            )
        if existing is not None and existing.digest == entry.digest and existing.ref == entry.ref:
            self._captured().release(entry.local_path)  # the existing copy has the same bytes
            return existing
        if existing is not None:
            self._captured().release(existing.local_path)
        self._manifest.entries[entry.path] = entry
        return entry

    def _captured(self) -> Capture:
        """This draft's staged copies; deleted with the draft unless its version is committed first."""
        if self._capture is None:
            self._capture = Capture()
            weakref.finalize(self, self._capture.cleanup)
        return self._capture

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        is_tmp: bool = False,
        skip_cache: bool = False,
        policy: str = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Add one file, at `name` (default: its file name). Its sha256 is taken now.

        `policy="mutable"` (the default) copies the file now, so the version keeps these bytes
        whatever happens to the file later; `"immutable"` skips the copy and fails the version,
        naming the file, if it changes before the upload.
        """
        self._check_editable()
        check_policy(policy)
        path = os.fspath(local_path)
        if not os.path.isfile(path):
            raise ValueError(f"Path is not a file: {path!r}")
        entry_path = _clean_path(name or os.path.basename(path))
        ((digest, source, stat),) = self._captured().add(
            [os.path.abspath(path)], policy=policy, use_cache=not skip_cache
        )
        entry = ArtifactManifestEntry(path=entry_path, digest=digest, size=stat[2], local_path=source, local_stat=stat)
        return self._put(entry, overwrite)

    def add_dir(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        skip_cache: bool = False,
        policy: str = "mutable",
        merge: bool = False,
    ) -> None:
        """Add every file under a directory, under the prefix `name` (default: at the top).

        `policy` as in `add_file`: "mutable" copies every file now, "immutable" reads them at upload.
        """
        self._check_editable()
        check_policy(policy)
        root = os.fspath(local_path)
        if not os.path.isdir(root):
            raise ValueError(f"Path is not a directory: {root!r}")
        prefix = _clean_path(name) if name else None
        found: list[tuple[str, str]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fname in sorted(filenames):
                full = os.path.join(dirpath, fname)
                if os.path.isfile(full):
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    found.append((f"{prefix}/{rel}" if prefix else rel, os.path.abspath(full)))
        added = self._captured().add([full for _, full in found], policy=policy, use_cache=not skip_cache)
        for (path, _), (digest, source, stat) in zip(found, added, strict=True):
            self._put(
                ArtifactManifestEntry(path=path, digest=digest, size=stat[2], local_path=source, local_stat=stat),
                merge,
            )

    @contextmanager
    def new_file(self, name: str, mode: str = "w", encoding: str | None = None) -> Iterator[IO[Any]]:
        """Write a new file straight into the artifact: `with art.new_file("a.txt") as f: f.write(...)`."""
        self._check_editable()
        path = _clean_path(name)
        if "x" in mode and path in self._manifest.entries:
            raise ValueError(f"The artifact already has a file at {path!r}.")
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="branchline-artifact-")
            weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        target = Path(self._tmpdir) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        file_mode = mode.replace("x", "w")
        with open(target, file_mode, encoding=encoding if "b" not in mode else None) as fh:
            yield fh
        # Our own temporary file, which nobody else writes: no copy needed.
        self.add_file(target, name=path, overwrite=True, policy="immutable")

    def add_reference(
        self, uri: str, name: str | None = None, checksum: bool = True, max_objects: int | None = None
    ) -> list[ArtifactManifestEntry]:
        """Describe files that stay where they are (`file://…` or `s3://…`); nothing is copied."""
        self._check_editable()
        entries = reference_entries(
            uri, _clean_path(name) if name else None, checksum=checksum, max_objects=max_objects
        )
        return [self._put(e, True) for e in entries]

    def remove(self, item: str | ArtifactManifestEntry) -> None:
        """Remove a file, or every file under a directory path."""
        self._check_editable()
        path = _clean_path(item.path if isinstance(item, ArtifactManifestEntry) else item)
        if path in self._manifest.entries:
            del self._manifest.entries[path]
            return
        under = [p for p in self._manifest.entries if p.startswith(path + "/")]
        if not under:
            raise FileNotFoundError(f"No file or directory {path!r} in the artifact.")
        for p in under:
            del self._manifest.entries[p]

    def get_entry(self, name: str) -> ArtifactManifestEntry:
        """The entry at `name`; KeyError if there is none."""
        self._load_entries()
        path = _clean_path(name)
        try:
            return self._manifest.entries[path]
        except KeyError:
            raise KeyError(f"No file {path!r} in artifact {self._name!r}.") from None

    # -- logging (called by the SDK) --------------------------------------------------------------
    def _prepare_commit(
        self,
        backend: ArtifactBackend,
        *,
        entity: str,
        project: str,
        aliases: list[str],
        incarnation_id: str | None,
        role: str,
    ) -> Callable[[], int]:
        """Check and freeze what will be committed, now; return the job that uploads and commits.

        The job (run here or on a background thread) returns how many blobs it sent. It reads only
        what was captured here, never the artifact's properties, so it cannot wait on itself.
        """
        row = self._row
        if row is not None:
            if role == USED:

                def use() -> int:
                    if incarnation_id is not None:
                        backend.record_use(row.id, incarnation_id)
                    return 0

                return use
            # Logged again: the same digest finds this version, moves the aliases and records
            # the new run's lineage; every blob is already stored.
            entries = list(self.manifest)
            upload = False
        else:
            entries = self._freeze(backend)
            upload = True
        request = CommitRequest(
            entity=entity,
            project=project,
            name=self._name,
            type=self._type,
            digest=ArtifactManifest({e.path: e for e in entries}).digest(),
            entries=[EntryRow(e.path, e.digest, e.size, e.ref, e.extra) for e in entries],
            description=self._description,
            metadata=self._metadata,
            # Aliases set on the draft count too, as in wandb.
            aliases=list(dict.fromkeys([*self._aliases, *aliases])),
            incarnation_id=incarnation_id,
            role=role,
        )

        def job() -> int:
            # Every blob is stored before the commit, and the commit is one transaction: a
            # process killed anywhere in here leaves blobs at most, never a version.
            uploaded = upload_missing(backend, entries) if upload else 0
            committed, _created = backend.commit(request)
            self._bind(committed, backend)
            self._release_staging()  # kept after a failure, so logging the draft again can work
            return uploaded

        return job

    def _freeze(self, backend: BlobQuery) -> list[ArtifactManifestEntry]:
        """Refuse files read in place that changed since they were added, capture what still needs
        it, and close the draft: from here on its entries are what gets stored."""
        entries = list(self._manifest)
        self._captured().freeze(entries, backend)
        self._final = True
        return entries

    def _release_staging(self) -> None:
        if self._capture is not None:
            self._capture.cleanup()

    def _commit(
        self,
        backend: ArtifactBackend,
        *,
        entity: str,
        project: str,
        aliases: list[str],
        incarnation_id: str | None,
        role: str,
    ) -> int:
        """Upload missing blobs, then commit the version, in this thread; returns how many blobs were sent."""
        self._settle()
        job = self._prepare_commit(
            backend, entity=entity, project=project, aliases=aliases, incarnation_id=incarnation_id, role=role
        )
        return job()

    # -- reading a logged version ---------------------------------------------------------------
    def _load_entries(self) -> None:
        if self._entries_loaded:
            return
        row, backend = self._logged("manifest")
        fetcher = VersionFetcher(backend, f"{row.name}:{row.version}")
        self._manifest = ArtifactManifest(
            {
                e.path: ArtifactManifestEntry(
                    path=e.path, digest=e.digest, size=e.size, ref=e.ref, extra=e.extra, fetcher=fetcher
                )
                for e in backend.entries(row.id)
            }
        )
        self._entries_loaded = True

    def files(self, names: list[str] | None = None) -> list[ArtifactManifestEntry]:
        """The entries, sorted by path (only `names`, if given)."""
        self._load_entries()
        entries = list(self._manifest)
        if names is not None:
            wanted = {_clean_path(n) for n in names}
            entries = [e for e in entries if e.path in wanted]
        return entries

    def _default_root(self) -> Path:
        row = self._logged("download")[0]
        return default_download_root() / f"{row.name}:{row.version}"

    def download(
        self, root: str | os.PathLike[str] | None = None, skip_cache: bool | None = None, path_prefix: str | None = None
    ) -> str:
        """Download every file (streamed, verified by sha256) into `root`; returns the directory.

        Files already there with the right content are not fetched again. The default root is
        `./artifacts/<name>:<version>`.
        """
        _, backend = self._logged("download")
        self._load_entries()
        target = Path(root) if root is not None else self._default_root()
        entries = [e for e in self._manifest if path_prefix is None or e.path.startswith(path_prefix)]
        download_entries(backend, entries, target, skip_cache=bool(skip_cache))
        return str(target)

    def checkout(self, root: str | os.PathLike[str] | None = None) -> str:
        """Download, then delete every file under `root` that is not part of the artifact."""
        target = Path(self.download(root))
        keep = {e.path for e in self._manifest}
        for path in sorted(target.rglob("*"), reverse=True):
            rel = path.relative_to(target).as_posix()
            if path.is_file() and rel not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return str(target)

    def verify(self, root: str | os.PathLike[str] | None = None) -> None:
        """Check content against the manifest; raise ArtifactIntegrityError naming every problem.

        With no `root`, re-hash the stored blobs and re-check references; with `root`, check a
        downloaded directory (missing, changed and extra files).
        """
        _, backend = self._logged("verify")
        self._load_entries()
        entries = list(self._manifest)
        problems = verify_stored(backend, entries) if root is None else verify_directory(entries, Path(root))
        if problems:
            raise ArtifactIntegrityError(
                f"Artifact {self.qualified_name} failed verification:\n  " + "\n  ".join(problems), problems
            )

    def wait(self, timeout: float | None = None) -> Artifact:
        """Block until the version is committed; re-raise the error if logging it failed.

        `run.log_artifact` may return while blobs are still uploading. Properties that need the
        version (`version`, `name`, `aliases`, `download()`, ...) wait on their own; `timeout`
        (seconds) raises TimeoutError instead of waiting longer.
        """
        if self._pending is None:
            if self._row is None:
                raise ArtifactNotLoggedError(
                    f"Artifact {self._name!r} is not logged: call run.log_artifact() before wait()."
                )
            return self
        self._pending.wait(timeout)
        return self

    # -- editing a logged version ----------------------------------------------------------------
    def save(self) -> None:
        """Store edits to `aliases`, `description` and `metadata` of a logged version."""
        row, backend = self._logged("save")
        backend.set_aliases(row.id, validate_aliases(self._aliases))
        backend.update(row.id, self._description, self._metadata)
        fresh = backend.get(row.id)
        if fresh is not None:
            self._row = fresh
            self._aliases = list(fresh.aliases)

    def delete(self, delete_aliases: bool = False) -> None:
        """Delete this version; refused while aliases point at it unless `delete_aliases=True`."""
        row, backend = self._logged("delete")
        backend.delete(row.id, delete_aliases)
        self._deleted = True

    def logged_by(self) -> Any:
        """The run that first logged this version (None if it was only used, or is deleted)."""
        row, backend = self._logged("logged_by")
        return None if row.created_by is None else backend.run(row.created_by)

    def used_by(self) -> list[Any]:
        """The runs that used this version, oldest first."""
        row, backend = self._logged("used_by")
        runs = (backend.run(i) for i in backend.users(row.id, USED))
        return [r for r in runs if r is not None]
