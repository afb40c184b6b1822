"""The run's HTTP shape is the server's response models, read from the store's `RunView` by name."""

from __future__ import annotations

import dataclasses
import json

from branchline.server.models import RunBrief, RunDetail, RunItem
from branchline.server.serialize import run_brief, run_detail, run_item
from branchline.store import RunView

# What the API keeps to itself: the row key, the define_metric state and the paused seconds (it
# answers `runtime` and `duration` instead).
_PRIVATE = {"pk", "rules", "paused"}
# What an Overview adds beside the view: its neighbours and the run's current incarnation.
_DETAIL_EXTRAS = {"archived_incarnations", "forks", "current_incarnation_id"}


def _view(**changes: object) -> RunView:
    base = RunView(
        pk=7,
        entity="team",
        project="proj",
        run_id="abc",
        incarnation_id="inc1",
        name="bright-river-1",
        notes="n",
        tags=["a"],
        group="g",
        job_type="train",
        host="h",
        username="u",
        created_at=100.0,
        updated_at=120.0,
        state="finished",
        exit_code=0,
        started_at=101.0,
        heartbeat_at=150.0,
        finished_at=160.5,
        config={"lr": 0.1},
        summary={"loss": 0.5},
        rules={"loss": {"summary": "min"}},
        metadata={"python": "3.11"},
        starting_step=0,
        last_step=99,
        runtime=59.5,
        duration=50.0,
        paused=9.5,
        archived=False,
        ordinal=1,
        stop_requested=False,
        forked_from={
            "run_id": "parent",
            "path": "team/proj/parent",
            "step": 10,
            "kind": "fork",
            "incarnation_id": "inc0",
            "archived": False,
            "deleted": False,
        },
    )
    return dataclasses.replace(base, **changes)


def test_every_model_field_comes_from_the_view() -> None:
    view_fields = {f.name for f in dataclasses.fields(RunView)} | {"path"}
    assert set(RunBrief.model_fields) <= view_fields
    assert set(RunItem.model_fields) <= view_fields
    assert set(RunDetail.model_fields) - _DETAIL_EXTRAS <= view_fields
    # Nothing of the view is left out of an Overview but what is private.
    assert view_fields - set(RunDetail.model_fields) == _PRIVATE


def test_answers_carry_the_view_values_and_the_duration() -> None:
    view = _view()
    archived = _view(incarnation_id="old", archived=True, runtime=29.0, duration=29.0, paused=0.0)
    detail = json.loads(
        run_detail(view, current_incarnation_id="inc1", archived=[archived], forks=[]).model_dump_json()
    )
    for name in set(RunDetail.model_fields) - _DETAIL_EXTRAS:
        expected = getattr(view, name)
        assert detail[name] == expected, name
    # Runtime is the wall clock (pauses included), Duration the active time: both as the store has them.
    assert (detail["runtime"], detail["duration"]) == (59.5, 50.0)
    assert (detail["archived_incarnations"][0]["runtime"], detail["archived_incarnations"][0]["duration"]) == (
        29.0,
        29.0,
    )
    assert "pk" not in detail and "rules" not in detail
    assert run_item(view).model_dump()["config"] == {"lr": 0.1}
    assert set(run_brief(view).model_dump()) == set(RunBrief.model_fields)
