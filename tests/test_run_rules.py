"""The resume, rewind and fork start rules (sdk/branching.py), in process: no store, no writer.

What a branch does to history, summary and config is end to end in test_fork_rewind.py; here are
the argument rules that `init()` applies before anything starts, plus the same errors through
`init()` itself to show it uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.errors import UsageError
from branchline.sdk.branching import MAX_STEP, Branch, parse_run_moment, plan_branch


@pytest.mark.parametrize(
    ("text", "run_id", "step"),
    [
        ("src?_step=0", "src", 0),
        ("src?_step=100", "src", 100),
        ("src?_step=1.5", "src", 1),  # a float means its integer part
        ("src?_step=1e3", "src", 1000),
        (f"src?_step={MAX_STEP}", "src", MAX_STEP),  # exact: not rounded through a float
    ],
)
def test_a_moment_is_a_run_id_and_an_integer_step(text: str, run_id: str, step: int) -> None:
    moment = parse_run_moment(text, "fork_from")
    assert (moment.run_id, moment.step) == (run_id, step)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("src?_step=abc", "is not a number"),
        ("src?loss=3", "only `_step` is supported"),
        ("src?_step=1&_step=2", "exactly one"),
        ("src", "exactly one"),
        ("?_step=1", "expected '<run_id>"),
        ("src/x?_step=1", "expected '<run_id>"),
        ("src?_step=-1", r"between 0 and 2\^63-1"),
        ("src?_step=-0.5", r"between 0 and 2\^63-1"),
        ("src?_step=nan", r"between 0 and 2\^63-1"),
        ("src?_step=inf", r"between 0 and 2\^63-1"),
        # Past a signed 64-bit step: a clear error, not an OverflowError from deep inside.
        ("src?_step=99999999999999999999", r"between 0 and 2\^63-1"),
        (f"src?_step={MAX_STEP + 1}", r"between 0 and 2\^63-1"),
        ("src?_step=1e300", r"between 0 and 2\^63-1"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("a:b?_step=1", "invalid characters"),
    ],
)
def test_bad_moments_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_run_moment(text, "fork_from")


def test_a_moment_must_be_a_string() -> None:
    with pytest.raises(UsageError, match="must be a string"):
        parse_run_moment(5, "resume_from")


def test_plain_start_and_resume_keep_the_given_id() -> None:
    assert plan_branch(None, None, None, None) == Branch()
    assert plan_branch("abc", "allow", None, None) == Branch(run_id="abc")


def test_fork_is_a_new_run_from_its_source() -> None:
    branch = plan_branch(None, None, None, "src?_step=7")
    assert branch == Branch(run_id=None, kind="fork", step=7, fork_from="src")
    assert plan_branch("new", None, None, "src?_step=7").run_id == "new"
    with pytest.raises(UsageError, match="is the run to fork from"):
        plan_branch("src", None, None, "src?_step=1")


def test_rewind_keeps_the_source_id() -> None:
    branch = plan_branch(None, None, "src?_step=3", None)
    assert branch == Branch(run_id="src", kind="rewind", step=3, resume_from="src")
    assert plan_branch("src", None, "src?_step=3", None).run_id == "src"
    with pytest.raises(UsageError, match="different ids"):
        plan_branch("other", None, "src?_step=1", None)


@pytest.mark.parametrize(
    ("resume", "resume_from", "fork_from"),
    [
        (None, "src?_step=1", "src?_step=1"),
        ("allow", "src?_step=1", None),
        ("allow", None, "x?_step=1"),
        ("must", "src?_step=1", "src?_step=1"),
    ],
)
def test_resume_rewind_and_fork_are_mutually_exclusive(
    resume: str | None, resume_from: str | None, fork_from: str | None
) -> None:
    with pytest.raises(UsageError, match="mutually exclusive"):
        plan_branch(None, resume, resume_from, fork_from)


def test_resume_values_and_ids_are_checked() -> None:
    with pytest.raises(UsageError, match="not valid"):
        plan_branch(None, "sometimes", None, None)
    with pytest.raises(UsageError, match="cannot be empty"):
        plan_branch("", None, None, None)


@pytest.mark.parametrize("argument", ["fork_from", "resume_from"])
def test_an_empty_branch_argument_is_an_error_not_ignored(argument: str) -> None:
    with pytest.raises(UsageError, match="is empty"):
        plan_branch(None, None, *(("", None) if argument == "resume_from" else (None, "")))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fork_from": ""}, "fork_from='' is empty"),
        ({"resume_from": ""}, "resume_from='' is empty"),
        ({"fork_from": "src?_step=99999999999999999999"}, r"between 0 and 2\^63-1"),
        ({"fork_from": "src?_step=1", "id": "src"}, "is the run to fork from"),
        ({"resume_from": "src?_step=1", "id": "other"}, "different ids"),
        ({"resume_from": "src?_step=1", "resume": True}, "mutually exclusive"),
    ],
)
def test_init_refuses_bad_branch_arguments_before_starting(
    tmp_path: Path, quiet: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        branchline.init(project="p", dir=tmp_path, mode="offline", settings=quiet, **kwargs)
    assert not (tmp_path / "branchline" / "runs").exists()  # nothing was started
