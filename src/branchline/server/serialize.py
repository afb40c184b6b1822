"""Runs as the API shows them: the response models of server/models.py, built from `RunView`.

The models read the view's attributes by name, so a field added to both appears in every answer
without restating it here; only what the view does not hold (an Overview's neighbours) is passed.
"""

from __future__ import annotations

from collections.abc import Sequence

from branchline.server.models import RunBrief, RunDetail, RunItem
from branchline.store import RunView

__all__ = ["run_brief", "run_detail", "run_item"]


def run_brief(view: RunView) -> RunBrief:
    return RunBrief.model_validate(view)


def run_item(view: RunView) -> RunItem:
    return RunItem.model_validate(view)


def run_detail(
    view: RunView, *, current_incarnation_id: str, archived: Sequence[RunView], forks: Sequence[RunView]
) -> RunDetail:
    item = RunItem.model_validate(view)
    return RunDetail.model_construct(
        **dict(item),
        metadata=view.metadata,
        archived_incarnations=[run_brief(a) for a in archived],
        forks=[run_brief(f) for f in forks],
        current_incarnation_id=current_incarnation_id,
    )
