"""Replaying journals that were not fully applied: crashed runs and offline runs."""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchline.records import RecordError
from branchline.rejects import isolate, set_aside
from branchline.runspec import RunSpec, RunStart
from branchline.sdk.journal_read import JournalReader, RowBlocks, Skip
from branchline.sdk.media.stage import MediaStage
from branchline.sdk.sink import Sink, local_store, run_file_uploader
from branchline.vocab import RecordKind

__all__ = ["SyncResult", "describe_failure", "sync_journal", "pending_journals", "journal_in_use"]

BATCH = 20_000


@dataclass
class SyncResult:
    journal: Path
    path: str  # entity/project/run_id
    records: int
    torn_bytes: int
    finished: bool  # an exit record was found; otherwise the run was marked crashed
    last_seq: int = 0  # the highest sequence number the sink has stored
    skipped: list[Skip] = field(default_factory=list)  # damage in the middle, read past
    kept_as: Path | None = None  # where a damaged journal was kept, once synced
    rejected: list[str] = field(default_factory=list)  # records that could not be stored, said plainly

    @property
    def warning(self) -> str | None:
        if self.rejected and not self.torn_bytes and not self.skipped:
            return "; ".join(self.rejected) + "."
        if not self.torn_bytes and not self.skipped:
            return None
        parts = [f"{self.journal}: kept {self.records} records"]
        parts.extend(skip.describe() for skip in self.skipped)
        if self.torn_bytes:
            parts.append(
                f"dropped {self.torn_bytes} bytes of torn or corrupt tail (the process stopped mid-write, or "
                "the disk was full)"
            )
        text = "; ".join(parts + self.rejected) + "."
        if self.kept_as is not None:
            text += f" The damaged journal is kept as {self.kept_as}."
        return text


def describe_failure(exc: BaseException) -> str:
    """An error while storing, said plainly: never a database statement or its parameters."""
    # SQLAlchemy wraps the driver's error with the statement and its parameters; say the driver's.
    cause = getattr(exc, "orig", None)
    base = cause if isinstance(cause, BaseException) else exc
    text = str(base).strip().splitlines()[0] if str(base).strip() else type(base).__name__
    full = isinstance(base, OSError) and base.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    lowered = text.lower()
    if full or "disk is full" in lowered or "no space left" in lowered or type(base).__name__ == "DiskFull":
        return f"the disk holding the store is full ({text}); free space there and run `branchline sync` again"
    if "disk i/o error" in lowered:  # what SQLite says when a write fails (a full disk, a size limit)
        return f"the store's disk refused a write ({text}); if it is full, free space there and sync again"
    return text if base is exc else f"{type(base).__name__}: {text}"


def journal_in_use(path: Path) -> bool:
    """Whether a live training process still holds the journal's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def pending_journals(branchline_dir: Path) -> list[Path]:
    """Journals under a branchline directory that no live process is writing."""
    return [p for p in sorted(branchline_dir.glob("runs/*/journal.blj")) if not journal_in_use(p)]


def _store_beside_records(journal: Path, sink: Sink, spec: RunSpec, start: RunStart, saved: dict[str, str]) -> None:
    """What the records point at: run files' contents (to a server), offline artifacts (to a store)."""
    uploader = run_file_uploader(sink)
    if uploader is not None:  # a server: it has the file records now, send the contents too
        files_dir = journal.parent.parent.parent / "files" / spec.incarnation_id
        uploader.upload_run_files(start, [(name, files_dir / name, sha) for name, sha in saved.items()])
    store = local_store(sink)
    if store is not None and (journal.parent / "artifacts").exists():
        from branchline.sdk.artifacts import sync_offline_artifacts

        sync_offline_artifacts(
            journal.parent, store, entity=start.entity, project=start.project, incarnation_id=start.incarnation_id
        )


def sync_journal(
    journal: Path,
    sink: Sink,
    *,
    delete: bool = True,
    overrides: dict[str, Any] | None = None,
) -> SyncResult:
    """Apply every good record of `journal` to `sink`; idempotent, so safe to run twice.

    The journal is streamed in batches (runs of float rows decoded in bulk), so a long run's
    journal is never held in memory as one record per row. Damage in the middle is read past and
    reported; a damaged journal is kept (renamed `*.damaged`) rather than deleted.
    """
    reader = JournalReader(journal, blocks=True, final=True)
    try:
        first, _ = reader.read_available(limit=1)
        if not first or int(first[0][1]) != RecordKind.HEADER:
            raise ValueError(f"{journal} has no run header; it cannot be synced.")
        spec = RunSpec.from_json(dict(first[0][2]))
        if overrides:
            for name, value in overrides.items():
                if value is not None:
                    setattr(spec, name, value)
        start = sink.begin_run(spec)
        blocks = RowBlocks()
        # Media records become stored files; their contents go up with the other run files below.
        media = MediaStage(journal.parent.parent.parent / "files" / spec.incarnation_id)
        count = 1
        finished = False
        last_seq = int(first[0][0])  # the header: begin_run stored it
        saved: dict[str, str] = {}
        rejected: list[str] = []  # records the store could not hold: set aside, said once
        while True:
            records, torn_bytes = reader.read_available(limit=BATCH)
            if not records:
                break
            body = media.transform(blocks.compact(records))
            applied = isolate(
                lambda part: sink.apply(spec.session_id, part),
                body,
                bad=lambda exc: isinstance(exc, RecordError),
                rejected=set_aside(sink.rejected),
            )
            last_seq = max(last_seq, int(applied))
            rejected.extend(r.message(f"{spec.entity}/{spec.project}/{spec.run_id}") for r in sink.rejected)
            sink.rejected.clear()
            for record in body:
                kind = int(record[1])
                if kind == RecordKind.ROW_BLOCK:
                    count += len(record[3]) // 8  # one journal record per row
                    continue
                count += 1
                if kind == RecordKind.EXIT:
                    finished = True
                elif kind == RecordKind.FILE:
                    saved[str(record[2])] = str(record[4])
    finally:
        reader.close()
    if not finished:
        sink.mark_crashed(start.incarnation_id, spec.session_id)
    _store_beside_records(journal, sink, spec, start, saved)
    kept_as = None
    if delete and reader.skipped:
        # Every intact record is stored and the damage is reported; keep the bytes for a look.
        kept_as = journal.with_name(journal.name + ".damaged")
        os.replace(journal, kept_as)
    elif delete:
        journal.unlink(missing_ok=True)
    return SyncResult(
        journal=journal,
        path=f"{start.entity}/{start.project}/{start.run_id}",
        records=count,
        torn_bytes=torn_bytes,
        finished=finished,
        last_seq=last_seq,
        skipped=list(reader.skipped),
        kept_as=kept_as,
        rejected=rejected,
    )
