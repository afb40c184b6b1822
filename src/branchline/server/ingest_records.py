"""Checking a batch of journal records before the store sees it, as records.py declares them.

Malformed input is a 4xx that names the record and field (`records[3].data.loss`), never a 500
from deep in the store.
"""

from __future__ import annotations

from typing import Any

from branchline.records import INT32, RecordError, check_record, flat_numbers
from branchline.server.errors import ApiError
from branchline.server.ingest_models import MAX_BATCH_RECORDS
from branchline.vocab import RecordKind

__all__ = ["validate_records"]

_HISTORY = int(RecordKind.HISTORY)


def _plain_history_row(record: Any, previous: int) -> bool:
    """The bulk of every batch, a history row of flat numbers: checked in place, passed on as it is."""
    if type(record) is not list or len(record) != 6 or record[1] != _HISTORY or type(record[1]) is not int:
        return False
    seq, step, ts, rt, data = record[0], record[2], record[3], record[4], record[5]
    return (
        type(seq) is int
        and previous < seq <= INT32
        and type(step) is int
        and 0 <= step < INT32
        and type(ts) is float
        and type(rt) is float
        and ts - ts == 0.0
        and rt - rt == 0.0
        and type(data) is dict
        and flat_numbers(data)
    )


def validate_records(records: Any) -> list[list[Any]]:
    """Checked and cleaned records, or an ApiError (422) naming the first bad record and field."""
    if type(records) is not list:
        raise ApiError(422, "records must be a list of [sequence, kind, ...] lists.", field="records")
    if len(records) > MAX_BATCH_RECORDS:
        raise ApiError(
            413,
            f"A batch holds at most {MAX_BATCH_RECORDS} records; this one has {len(records)}. Send smaller batches.",
            code="too_large",
            field="records",
        )
    out: list[list[Any]] = []
    previous = 0
    for index, record in enumerate(records):
        if _plain_history_row(record, previous):
            previous = record[0]
            out.append(record)
            continue
        where = f"records[{index}]"
        try:
            checked = check_record(record, where)
            if checked[0] <= previous:
                raise RecordError(
                    f"{where}.sequence",
                    f"{where}: sequence numbers must strictly increase within a batch "
                    f"({checked[0]} follows {previous})",
                )
        except RecordError as bad:
            raise ApiError(422, f"Malformed record: {bad.message}.", code="invalid_record", field=bad.field) from None
        previous = checked[0]
        out.append(checked)
    return out
