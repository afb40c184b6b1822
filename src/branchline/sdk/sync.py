"""Replaying journals that were not fully applied: crashed runs and offline runs."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchline.runspec import RunSpec
from branchline.sdk.journal import JournalReader, RowBlocks
from branchline.sdk.sink import Sink
from branchline.vocab import RecordKind

__all__ = ["SyncResult", "sync_journal", "pending_journals", "journal_in_use"]

BATCH = 20_000


@dataclass
class SyncResult:
    journal: Path
    path: str  # entity/project/run_id
    records: int
    torn_bytes: int
    finished: bool  # an exit record was found; otherwise the run was marked crashed

    @property
    def warning(self) -> str | None:
        if not self.torn_bytes:
            return None
        return (
            f"{self.journal}: kept {self.records} records; dropped {self.torn_bytes} bytes of torn or "
            "corrupt tail (the process stopped mid-write)."
        )


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


def sync_journal(
    journal: Path,
    sink: Sink,
    *,
    delete: bool = True,
    overrides: dict[str, Any] | None = None,
) -> SyncResult:
    """Apply every good record of `journal` to `sink`; idempotent, so safe to run twice.

    The journal is streamed in batches (runs of float rows decoded in bulk), so a long run's
    journal is never held in memory as one record per row.
    """
    reader = JournalReader(journal, blocks=True)
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
        count = 1
        finished = False
        saved: dict[str, str] = {}
        while True:
            records, torn_bytes = reader.read_available(limit=BATCH)
            if not records:
                break
            body = blocks.compact(records)
            sink.apply(spec.session_id, body)
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
    upload = getattr(sink, "upload_run_files", None)
    if upload is not None:  # a server: it has the file records now, send the contents too
        files_dir = journal.parent.parent.parent / "files" / spec.incarnation_id
        upload(start, [(name, files_dir / name, sha) for name, sha in saved.items()])
    store = getattr(sink, "store", None)
    if store is not None and (journal.parent / "artifacts").exists():
        from branchline.sdk.artifacts import sync_offline_artifacts

        sync_offline_artifacts(
            journal.parent, store, entity=start.entity, project=start.project, incarnation_id=start.incarnation_id
        )
    if delete:
        journal.unlink(missing_ok=True)
    return SyncResult(
        journal=journal,
        path=f"{start.entity}/{start.project}/{start.run_id}",
        records=count,
        torn_bytes=torn_bytes,
        finished=finished,
    )
