"""Artifacts from a run: `log_artifact`, `use_artifact`, `log_code`, and offline staging.

Online runs check and freeze the artifact in `log_artifact`, then upload missing blobs and commit
the version on a background thread, one artifact after another in call order; `artifact.wait()`
blocks until its version is committed and `run.finish()` waits for all of them. Offline runs stage
the blobs under the run directory and list the versions in `artifacts/pending.jsonl`;
`sync_offline_artifacts` commits them later.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from branchline.artifacts.artifact import Artifact, PendingCommit
from branchline.artifacts.backend import LOGGED, USED, ArtifactBackend, CommitRequest, EmbeddedBackend
from branchline.artifacts.blobstores import LocalBlobStore, open_blob_store, resolve_blob_url
from branchline.artifacts.errors import ArtifactNotFoundError
from branchline.artifacts.hashing import FileStat
from branchline.artifacts.naming import parse_artifact_path, validate_aliases
from branchline.artifacts.transfer import upload_missing
from branchline.errors import UsageError
from branchline.sdk.context import ShutdownPhase
from branchline.store.artifacts import EntryRow, VersionRow

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext
    from branchline.store import Store

__all__ = ["log_artifact", "log_code", "run_backend", "sync_offline_artifacts", "use_artifact"]

_PENDING = "pending.jsonl"
_SKIP_DIRS = {
    "branchline", "wandb", ".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "artifacts",
}  # fmt: skip


_remote_backends: dict[str, ArtifactBackend] = {}


class _CloseAtFinish:
    """A run part whose `stop()` (at finish) closes the run's HTTP artifact backend."""

    def __init__(self, incarnation_id: str) -> None:
        self.incarnation_id = incarnation_id

    def stop(self) -> None:
        backend = _remote_backends.pop(self.incarnation_id, None)
        close = getattr(backend, "close", None)
        if close is not None:
            close()


class _Committer:
    """Runs one run's artifact commits on a background thread, one after another, in call order.

    In order, so aliases such as `latest` end where the calls say. The thread is not a daemon and
    exits whenever the queue is empty: the interpreter completes queued commits before it exits
    and never waits on an idle thread. It stops in the first shutdown phase, so `finish()` waits
    for every commit (`stop()`) before anything it needs is closed.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._jobs: deque[tuple[PendingCommit, Callable[[], object]]] = deque()
        self._all: list[PendingCommit] = []
        self._running = False

    def submit(self, pending: PendingCommit, job: Callable[[], object]) -> None:
        with self._lock:
            # Forget what finished cleanly, so a run logging a checkpoint per epoch holds no history.
            self._all = [p for p in self._all if not p.join(0) or (p.error is not None and not p.reported)]
            self._jobs.append((pending, job))
            self._all.append(pending)
            if self._running:
                return
            self._running = True
            try:
                threading.Thread(target=self._work, name="branchline-artifact-commit").start()
                return
            except RuntimeError:  # no new threads (interpreter shutting down): commit right here
                self._running = False
                self._jobs.pop()
        pending.run(job)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                pending, job = self._jobs.popleft()
            pending.run(job)

    def drain(self) -> None:
        """Wait until every commit queued so far has finished (successfully or not)."""
        with self._lock:
            queued = list(self._all)
        for pending in queued:
            pending.join()

    def stop(self) -> None:
        """At finish: wait for every commit; warn about failures nobody saw through wait()."""
        _committers.pop(self._ctx.incarnation_id, None)
        self.drain()
        for pending in self._all:
            if pending.error is not None and not pending.reported:
                self._ctx.terminal.warn(f"artifact {pending.name!r} was not logged: {pending.error}")


_committers: dict[str, _Committer] = {}


def _committer(ctx: RunContext) -> _Committer:
    found = _committers.get(ctx.incarnation_id)
    if found is None:
        found = _committers[ctx.incarnation_id] = _Committer(ctx)
        # First, so finish() waits for the commits before closing backends or the store.
        ctx.attach(found, ShutdownPhase.DRAIN_UPLOADS)
    return found


def _run_loader(base_url: str, api_key: str | None) -> Callable[[str], Any]:
    """Turns an incarnation id into an `Api` run of the server, for `logged_by()`/`used_by()`."""

    def load(incarnation_id: str) -> Any:
        from branchline.api.remote import RemoteBackend
        from branchline.api.runs import Run as ApiRun

        remote = RemoteBackend(base_url, api_key)
        view = remote.get_incarnation(incarnation_id)
        return None if view is None else ApiRun(remote, view, read_only=bool(getattr(view, "archived", False)))

    return load


def run_backend(ctx: RunContext) -> ArtifactBackend:
    """The backend of an online run: its server over HTTP, or its store with blobs beside it."""
    settings = ctx.settings
    base_url = settings.base_url
    store = None if base_url else ctx.embedded_store()
    if store is None and base_url and settings.mode != "offline":
        found = _remote_backends.get(ctx.incarnation_id)
        if found is None:
            from branchline.artifacts.http import HttpArtifactBackend

            api_key = settings.api_key
            start = ctx.start
            found = HttpArtifactBackend(
                base_url, api_key, start.entity, start.project, run_loader=_run_loader(base_url, api_key)
            )
            _remote_backends[ctx.incarnation_id] = found
            ctx.attach(_CloseAtFinish(ctx.incarnation_id), ShutdownPhase.CLOSE_CLIENTS)
        return found
    if store is None:
        raise UsageError("This run has no store (offline or disabled).")
    url = resolve_blob_url(settings.resolved_store_url, settings.extra.get("artifact_storage"))
    return EmbeddedBackend(store, open_blob_store(url))


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-.]", "_", text)[:128]


def _artifact_from_path(ctx: RunContext, target: str, name: str | None, type: str | None) -> Artifact:
    base = os.path.basename(target.rstrip("/")) or "artifact"
    art = Artifact(name or _sanitize(f"run-{ctx.start.run_id}-{base}"), type or "unspecified")
    scheme = urlparse(target).scheme
    if scheme in ("file", "s3"):
        art.add_reference(target)
    elif os.path.isdir(target):
        art.add_dir(target)
    elif os.path.isfile(target):
        art.add_file(target)
    else:
        raise ValueError(f"Path is not a file, a directory or a file:// or s3:// reference: {target!r}")
    return art


def log_artifact(
    ctx: RunContext,
    artifact_or_path: Artifact | str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,
    aliases: list[str] | str | None = None,
    tags: list[str] | None = None,
) -> Artifact:
    """Log an artifact (or a path, which becomes one) as an output of the run.

    Only blobs the storage lacks are uploaded; the version is committed after all of them, with
    alias `latest` always added. The same contents as an existing version reuse it. Returns once
    the artifact is checked and frozen; the upload and commit continue in the background (see
    `Artifact.wait()`). Files must not change until then: a changed file fails the commit.
    """
    ctx.ensure_active("log_artifact")
    checked = validate_aliases(aliases)
    if isinstance(artifact_or_path, Artifact):
        art = artifact_or_path
    elif isinstance(artifact_or_path, (str, os.PathLike)):
        art = _artifact_from_path(ctx, os.fspath(artifact_or_path), name, type)
    else:
        raise TypeError(f"log_artifact takes an Artifact or a path, got {artifact_or_path.__class__.__name__}.")
    if ctx.settings.mode == "disabled":
        return art
    if ctx.settings.mode == "offline":
        _stage_offline(ctx, art, checked)
        return art
    _submit(ctx, art, checked, LOGGED)
    return art


def _submit(ctx: RunContext, art: Artifact, aliases: list[str], role: str) -> PendingCommit:
    """Check and freeze `art` now, and queue its upload and commit on the run's committer."""
    if art._pending is not None:
        art._pending.join()  # the same object logged twice: let the first attempt settle
    job = art._prepare_commit(
        run_backend(ctx),
        entity=ctx.start.entity,
        project=ctx.start.project,
        aliases=aliases,
        incarnation_id=ctx.incarnation_id,
        role=role,
    )
    pending = PendingCommit(art.source_name)
    art._pending = pending
    _committer(ctx).submit(pending, job)
    return pending


def use_artifact(
    ctx: RunContext,
    artifact_or_name: Artifact | str,
    type: str | None = None,
    aliases: list[str] | None = None,
    use_as: str | None = None,
) -> Artifact:
    """Record that the run uses a version and return it (`"name:alias"`, `"name:vN"`, `"e/p/name:alias"`)."""
    ctx.ensure_active("use_artifact")
    if ctx.settings.mode == "offline":
        raise TypeError("Cannot use artifact when in offline mode.")
    if ctx.settings.mode == "disabled":
        if isinstance(artifact_or_name, Artifact):
            return artifact_or_name
        return Artifact(parse_artifact_path(artifact_or_name).name, type or "unspecified")
    backend = run_backend(ctx)
    if isinstance(artifact_or_name, Artifact):
        # Through the committer, after what this run logged before; returns once recorded.
        _submit(ctx, artifact_or_name, validate_aliases(aliases), USED).wait()
        return artifact_or_name
    if not isinstance(artifact_or_name, str):
        raise TypeError(f"use_artifact takes an Artifact or a name, got {artifact_or_name.__class__.__name__}.")
    found = _committers.get(ctx.incarnation_id)
    if found is not None:
        found.drain()  # "name:latest" right after log_artifact("name") must find that version
    path = parse_artifact_path(artifact_or_name)
    entity, project = path.entity or ctx.start.entity, path.project or ctx.start.project
    row = backend.resolve(entity, project, path.name, path.spec)
    if row is None:
        raise ArtifactNotFoundError(f"Artifact {entity}/{project}/{path.name}:{path.spec} not found.")
    if type is not None and row.type != type:
        raise UsageError(f"Artifact {entity}/{project}/{path.name}:{path.spec} has type {row.type!r}, not {type!r}.")
    backend.record_use(row.id, ctx.incarnation_id)
    return Artifact._from_row(row, backend)


# -- log_code -------------------------------------------------------------------------------------
def _default_include(path: str, root: str) -> bool:
    base = os.path.basename(path)
    return (
        base.endswith(".py")
        or (base.startswith("requirements") and base.endswith(".txt"))
        or base.startswith("Dockerfile")
    )


def _default_exclude(path: str, root: str) -> bool:
    rel = os.path.relpath(path, root)
    return any(part in _SKIP_DIRS for part in Path(rel).parts[:-1])


def _call(fn: Callable[..., Any], path: str, root: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
        two = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params.values())
    except (TypeError, ValueError):
        two = True
    return bool(fn(path, root) if two else fn(path))


def _program_name() -> str:
    main = sys.modules.get("__main__")
    program = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return os.path.basename(program) or "python"


def log_code(
    ctx: RunContext,
    root: str | os.PathLike[str] = ".",
    name: str | None = None,
    include_fn: Callable[..., bool] | None = None,
    exclude_fn: Callable[..., bool] | None = None,
) -> Artifact | None:
    """Log the source files under `root` as a `code` artifact; None if nothing matched.

    By default `.py` files, `requirements*.txt` and `Dockerfile*`, skipping the run directory,
    virtualenvs and tool caches. `include_fn`/`exclude_fn` take `(path, root)` or `(path)`.
    """
    ctx.ensure_active("log_code")
    base = os.path.abspath(os.fspath(root))
    include = include_fn or _default_include
    exclude = exclude_fn or _default_exclude
    own_dir = str(ctx.settings.branchline_dir)
    art = Artifact(name or _sanitize(f"source-{ctx.start.project}-{_program_name()}"), "code")
    found = False
    for dirpath, dirnames, filenames in os.walk(base):
        # Prune what is never source: our own directory, virtualenvs and tool caches.
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _SKIP_DIRS
            and os.path.join(dirpath, d) != own_dir
            and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
        )
        for fname in sorted(filenames):
            full = os.path.join(dirpath, fname)
            if _call(include, full, base) and not _call(exclude, full, base):
                art.add_file(full, name=os.path.relpath(full, base))
                found = True
    if not found:
        return None
    return log_artifact(ctx, art)


# -- offline staging ---------------------------------------------------------------------------------
class _StagingSink:
    """Uploads into a blob store under the run directory (no database offline)."""

    def __init__(self, blobs: LocalBlobStore) -> None:
        self.blobs = blobs
        self.workers = blobs.workers

    def missing_blobs(self, digests: Any) -> set[str]:
        return self.blobs.missing(digests)

    def upload_blob(self, digest: str, path: str, expected_stat: FileStat | None) -> None:
        self.blobs.put_file(digest, path, expected_stat=expected_stat)


def _stage_offline(ctx: RunContext, art: Artifact, aliases: list[str]) -> None:
    if not art.is_draft():
        return
    stage = ctx.run_dir / "artifacts"
    blobs = LocalBlobStore(stage / "blobs")
    sink = _StagingSink(blobs)
    entries = art._freeze(sink)
    upload_missing(sink, entries)
    art._release_staging()  # the run directory now holds the bytes
    record = {
        "name": art.source_name,
        "type": art.type,
        "description": art.description,
        "metadata": art.metadata,
        "aliases": aliases,
        "digest": art.digest,
        "entries": [e.to_dict() for e in entries],
    }
    line = (json.dumps(record) + "\n").encode()
    # One append per artifact: a crash leaves whole lines, and a torn last line is skipped at sync.
    fd = os.open(stage / _PENDING, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def sync_offline_artifacts(
    run_dir: str | os.PathLike[str],
    store: Store,
    *,
    entity: str,
    project: str,
    incarnation_id: str,
    blob_url: str | None = None,
) -> list[VersionRow]:
    """Commit what an offline run staged: copy missing blobs to the real storage, then each version.

    Idempotent: committing the same contents again finds the same versions.
    """
    stage = Path(run_dir) / "artifacts"
    pending = stage / _PENDING
    if not pending.exists():
        return []
    staged = LocalBlobStore(stage / "blobs")
    backend = EmbeddedBackend(store, open_blob_store(resolve_blob_url(store.url, blob_url)))
    committed: list[VersionRow] = []
    for raw in pending.read_text().splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a torn last line from a crash
        entries = [
            EntryRow(e["path"], e["digest"], e.get("size"), e.get("ref"), e.get("extra")) for e in record["entries"]
        ]
        stored = {e.digest for e in entries if e.ref is None}
        for digest in sorted(backend.missing_blobs(stored)):
            backend.upload_blob(digest, str(staged.path(digest)), None)
        row, _ = backend.commit(
            CommitRequest(
                entity=entity,
                project=project,
                name=record["name"],
                type=record["type"],
                digest=record["digest"],
                entries=entries,
                description=record.get("description"),
                metadata=record.get("metadata") or {},
                aliases=list(record.get("aliases") or []),
                incarnation_id=incarnation_id,
                role=LOGGED,
            )
        )
        committed.append(row)
    return committed
