"""The rules for starting a run from another one: resume, rewind (`resume_from`), fork (`fork_from`).

Pure functions of `init()`'s arguments, with no I/O, so they are tested in process. What happens to
the source's history, summary and config is the store's part (it merges the source's config with
the one passed, the passed values winning); this module decides *which* run starts *how*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from branchline.errors import UsageError
from branchline.vocab import validate_run_id

__all__ = ["MAX_STEP", "RESUME_VALUES", "Branch", "RunMoment", "parse_run_moment", "plan_branch"]

#: Steps are stored as signed 64-bit integers.
MAX_STEP = 2**63 - 1
RESUME_VALUES = frozenset({"allow", "must", "never", "auto"})

BranchKind = Literal["fork", "rewind"]


@dataclass(frozen=True)
class RunMoment:
    """A point in a run's history, as given to `fork_from=` or `resume_from=`."""

    run_id: str
    step: int
    raw_value: float


@dataclass(frozen=True)
class Branch:
    """How a run starts, decided from `id=`, `resume=`, `resume_from=` and `fork_from=`."""

    #: The id asked for (`id=`, or the rewound run's); None lets the run get a new one.
    run_id: str | None = None
    #: "fork", "rewind", or None for a plain start or a resume.
    kind: BranchKind | None = None
    #: The step the history is cut at; logging continues at step + 1.
    step: int | None = None
    fork_from: str | None = None
    resume_from: str | None = None


def _step_of(value_text: str, argument: str, text: str) -> tuple[int, float]:
    """The integer step of `_step=<value>`; a float is truncated, as wandb does."""
    out_of_range = UsageError(f"{argument}={text!r}: the step must be an integer between 0 and 2^63-1 ({MAX_STEP}).")
    try:
        step = int(value_text)  # exact for integers of any size; float() would round them
        raw = float(step) if abs(step) < 2**1023 else math.inf
    except ValueError:
        try:
            raw = float(value_text)
        except ValueError:
            raise UsageError(f"{argument}={text!r}: the step {value_text!r} is not a number.") from None
        if math.isnan(raw) or math.isinf(raw):
            raise out_of_range from None
        step = int(raw)
    if step < 0 or raw < 0 or step > MAX_STEP:
        raise out_of_range
    return step, raw


def parse_run_moment(text: object, argument: str) -> RunMoment:
    """Parse `"<run_id>?_step=<N>"`. A float value is truncated to its integer step."""
    if not isinstance(text, str):
        raise UsageError(f"`{argument}` must be a string like 'abc123?_step=100'.")
    if not text.strip():
        raise UsageError(f"{argument}={text!r} is empty: give '<run_id>?_step=<N>', e.g. 'abc123?_step=100'.")
    parts = urlsplit("moment://" + text)
    run_id = parts.netloc or ""
    if parts.path or parts.fragment or not run_id:
        raise UsageError(
            f"Could not parse {argument}={text!r}: expected '<run_id>?_step=<N>', e.g. 'abc123?_step=100'."
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    if len(query) != 1:
        raise UsageError(f"Could not parse {argument}={text!r}: give exactly one query parameter, `_step`.")
    metric, value_text = query[0]
    if metric != "_step":
        raise UsageError(f"{argument}={text!r} branches on {metric!r}; only `_step` is supported.")
    step, raw = _step_of(value_text.strip(), argument, text)
    validate_run_id(run_id)
    return RunMoment(run_id=run_id, step=step, raw_value=raw)


def plan_branch(
    run_id: str | None,
    resume: str | None,
    resume_from: str | None,
    fork_from: str | None,
) -> Branch:
    """Check the combination of start arguments and say how the run starts.

    At most one of `resume`, `resume_from` and `fork_from`; a fork needs an id other than its
    source's; a rewind keeps its source's id (a different `id=` is an error). `resume="auto"` and
    the resume file are the caller's: they need the disk.
    """
    chosen = [
        name for name, value in (("resume", resume), ("resume_from", resume_from), ("fork_from", fork_from)) if value
    ]
    if len(chosen) > 1:
        raise UsageError(
            f"{' and '.join(chosen)} were both given; `fork_from`, `resume` and `resume_from` are mutually exclusive."
        )
    if resume is not None and resume not in RESUME_VALUES:
        raise UsageError(f"resume={resume!r} is not valid; use 'allow', 'must', 'never' or 'auto' (or True).")
    wanted = validate_run_id(run_id) if run_id is not None else None
    if fork_from is not None:
        moment = parse_run_moment(fork_from, "fork_from")
        if wanted == moment.run_id:
            raise UsageError(
                f"id={wanted!r} is the run to fork from; a fork is a new run, so give it another id (or none)."
            )
        return Branch(run_id=wanted, kind="fork", step=moment.step, fork_from=moment.run_id)
    if resume_from is not None:
        moment = parse_run_moment(resume_from, "resume_from")
        if wanted is not None and wanted != moment.run_id:
            raise UsageError(
                f"Both id={wanted!r} and resume_from={resume_from!r} were given with different ids; "
                "a rewind keeps the run's id, so drop id= or make them equal."
            )
        return Branch(run_id=moment.run_id, kind="rewind", step=moment.step, resume_from=moment.run_id)
    return Branch(run_id=wanted)
