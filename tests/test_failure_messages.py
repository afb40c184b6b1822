"""Store failures are said plainly: the driver's message and what to do, never a SQL statement or its
parameters (which can hold a user's values), whether `sync`, a left-over journal at `init`, or the
writer process reports them."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy.exc import OperationalError

from branchline.sdk.sink_types import SinkCapabilities
from branchline.sdk.sync import describe_failure
from branchline.sdk.writer import WriterLoop


def _database_error(message: str) -> OperationalError:
    return OperationalError(
        "INSERT INTO history_chunks (incarnation_id, key) VALUES (?, ?)",
        ("inc-secret-value", "loss"),
        sqlite3.OperationalError(message),
    )


def test_a_database_error_is_said_without_its_statement_or_parameters() -> None:
    said = describe_failure(_database_error("database or disk is full"))
    assert "INSERT" not in said and "inc-secret-value" not in said
    assert "full" in said and "branchline sync" in said


def test_a_full_disk_says_what_to_do() -> None:
    said = describe_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert "the disk holding the store is full" in said and "free space" in said


def test_the_writer_reports_a_store_error_plainly_once(tmp_path: Path, capsys: Any) -> None:
    journal = tmp_path / "journal.blj"
    journal.write_bytes(b"")
    sent: list[dict[str, Any]] = []
    # The report never touches the sink; a sink that declares no capabilities stands in for one.
    sink: Any = SimpleNamespace(capabilities=SinkCapabilities())
    loop = WriterLoop(journal, sink=sink, session_id="s", incarnation_id="i", send=sent.append)
    for _ in range(3):
        loop._report(_database_error("disk I/O error"))
    assert len(sent) == 1 and sent[0]["event"] == "error"
    message = sent[0]["message"]
    assert "INSERT" not in message and "inc-secret-value" not in message
    assert "refused a write" in message and "retried" in message
    printed = capsys.readouterr().err
    assert "INSERT" not in printed and printed.count("branchline writer:") == 3
