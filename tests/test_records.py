"""The journal record declaration (records.py) holds every writer and reader to one layout."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.records import SPECS, RecordError, check_loggable, check_record
from branchline.sdk.journal_read import RowBlocks, read_journal
from branchline.store.apply import HANDLERS
from branchline.vocab import RecordKind
from tests.conftest import QUIET


def test_every_kind_is_declared_and_has_a_store_handler_taking_its_declared_fields() -> None:
    kinds = set(RecordKind) - {RecordKind.FLOAT_ROW}  # a binary frame the writer turns into ROW_BLOCKs
    assert set(SPECS) == kinds and set(HANDLERS) == kinds
    for kind, spec in SPECS.items():
        params = list(inspect.signature(HANDLERS[kind]).parameters)[1:]  # after the batch
        assert tuple(params) == spec.names, kind.name


def test_a_runs_journal_matches_the_declaration_fast_paths_included(tmp_path: Path) -> None:
    run = branchline.init(project="decl", id="d1", mode="offline", settings=dict(QUIET))
    for i in range(5):
        run.log({"loss": 0.5 / (i + 1), "acc": 0.1 * i})  # float rows: the hand-packed binary frame
    for i in range(3):
        run.log({"epoch": i, "phase": "train"})  # the msgpack fast path
    run.log({"nested": {"a": 1.0, "b": [1, 2]}}, step=20)
    run.config.update({"lr": 0.1})
    run.summary["best"] = 1.0
    run.define_metric("loss", summary="min")
    run.tags = ["t"]
    run.finish()
    journal = next(tmp_path.glob("branchline/runs/*/journal.blj"))
    raw = read_journal(journal).records
    kinds = {int(r[1]) for r in raw}
    assert {RecordKind.FLOAT_ROW, RecordKind.ROW_SCHEMA, RecordKind.HISTORY, RecordKind.EXIT} <= kinds
    # Each hand-packed float row is a HISTORY row in the declared form: same step, timestamp, runtime.
    layouts = {r[2]: r[3] for r in raw if r[1] == RecordKind.ROW_SCHEMA}
    for seq, _kind, step, ts, runtime, layout, body in (r for r in raw if r[1] == RecordKind.FLOAT_ROW):
        values = memoryview(body).cast("d").tolist()
        as_history = SPECS[RecordKind.HISTORY].build(
            seq, step, ts, runtime, dict(zip(layouts[layout], values, strict=True))
        )
        assert check_record(as_history)[5] == {"loss": 0.5 / (step + 1), "acc": 0.1 * step}
    records = RowBlocks().compact(raw)
    for index, record in enumerate(records):
        checked = check_record(list(record), f"records[{index}]")
        assert checked[0] == record[0]
    blocks = [r for r in records if r[1] == RecordKind.ROW_BLOCK]
    named = SPECS[RecordKind.ROW_BLOCK].named(blocks[0])
    # The first two rows take the msgpack paths; from the third on a row is one struct.pack.
    assert named["keys"] == ["loss", "acc"] and named["steps"] == b"".join(i.to_bytes(8, "little") for i in (2, 3, 4))
    history = [SPECS[RecordKind.HISTORY].named(r) for r in records if r[1] == RecordKind.HISTORY]
    assert [h["step"] for h in history] == [0, 1, 5, 6, 7, 20]
    assert history[2]["data"] == {"epoch": 0, "phase": "train"}


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ([1, 2, 0, 1.0, 1.0, {"by": b"\xff"}], "records[0].data.by"),
        ([1, 2, -1, 1.0, 1.0, {}], "records[0].step"),
        ([1, 7, 0, "exploded", 1.0], "records[0].state"),
        ([1, 4, {"x": float("nan")}], "records[0].values.x"),
        ([1, 99], "records[0].kind"),
    ],
)
def test_a_bad_record_is_refused_naming_its_field(record: list[Any], field: str) -> None:
    with pytest.raises(RecordError) as caught:
        check_record(record, "records[0]")
    assert caught.value.field == field


def test_check_loggable_limits_come_from_the_declaration() -> None:
    check_loggable({"a": 1, "b": {"c": [1.0, "x"]}, "img": {"_type": "image-file", "path": "p"}})
    with pytest.raises(TypeError, match="longer than 512"):
        check_loggable({"k" * 600: 1.0})
    with pytest.raises(TypeError, match="longer than 512"):
        check_loggable({"a": {"k" * 600: 1.0}})
