"""Fork and rewind: semantics against a brute-force model, errors, crashes, offline (issue 4).

Tests taking `backend` run embedded and against a real server (tests/backends.py) and read back
through `Api`; the offline test stays embedded (offline runs branch from the local store).
"""

from __future__ import annotations

import getpass
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.api import Run as ApiRun
from tests.backends import Backend, history
from tests.conftest import rows, run_python, store_at

SEEDS = Path(__file__).resolve().parents[1] / "examples" / "seeds"
AGG = "min,max,mean,first,last"


class Model:
    """Brute-force reference: every run is a dict step -> row of what it can see."""

    def __init__(self) -> None:
        self.visible: dict[str, dict[int, dict[str, float]]] = {}
        self.config: dict[str, dict[str, Any]] = {}

    def new(self, run_id: str, config: dict[str, Any]) -> None:
        self.visible[run_id] = {}
        self.config[run_id] = dict(config)

    def branch(self, run_id: str, source: str, step: int, config: dict[str, Any]) -> None:
        self.visible[run_id] = {s: r for s, r in self.visible[source].items() if s <= step}
        self.config[run_id] = {**self.config[source], **config}

    def log(self, run_id: str, step: int, row: dict[str, float]) -> None:
        self.visible[run_id][step] = row

    def series(self, run_id: str, key: str) -> dict[int, float]:
        return {s: r[key] for s, r in sorted(self.visible[run_id].items()) if key in r}

    def summary(self, run_id: str, key: str) -> dict[str, float]:
        values = list(self.series(run_id, key).values())
        return {
            "min": min(values),
            "max": max(values),
            "mean": sum(values) / len(values),
            "first": values[0],
            "last": values[-1],
        }


def log_steps(run: branchline.Run, model: Model, start: int, stop: int, scale: float) -> None:
    for step in range(start, stop):
        row = {"loss": scale * math.cos(step / 7) + step * 0.01, "other": float(step) * scale}
        run.log(row)
        model.log(run.id, step, row)


def check(view: ApiRun, model: Model) -> None:
    run_id = view.id
    for key in ("loss", "other"):
        got = history(view, key)
        want = model.series(run_id, key)
        assert list(got) == list(want), f"{run_id}/{key}: steps differ"
        assert all(math.isclose(got[s], want[s]) for s in want), f"{run_id}/{key}: values differ"
    expected = model.summary(run_id, "loss")
    got_summary = view.summary["loss"]
    assert set(got_summary) == set(expected)
    assert all(math.isclose(got_summary[k], expected[k]) for k in expected), (run_id, got_summary, expected)
    assert math.isclose(view.summary["other"], model.series(run_id, "other")[max(model.visible[run_id])])
    assert view.summary["_step"] == max(model.visible[run_id])
    assert view.config == model.config[run_id]


def test_chains_match_a_brute_force_reference(backend: Backend, quiet: dict[str, Any]) -> None:
    model = Model()
    p = "chains"

    def start(run_id: str | None = None, config: dict[str, Any] | None = None, **kw: Any) -> branchline.Run:
        run = branchline.init(project=p, id=run_id, config=config or {}, settings=quiet, **kw)
        run.define_metric("loss", summary=AGG)
        return run

    a = start("a", {"lr": 1, "arch": "x"})
    model.new("a", {"lr": 1, "arch": "x"})
    log_steps(a, model, 0, 100, 1.0)
    a.finish()

    b = start("b", {"lr": 2}, fork_from="a?_step=50")  # fork
    model.branch("b", "a", 50, {"lr": 2})
    assert b.starting_step == 51 and b.forked_from and b.forked_from["run_id"] == "a"
    log_steps(b, model, 51, 80, 2.0)
    b.finish()

    c = start("c", {"extra": 1}, fork_from="b?_step=60")  # fork of a fork
    model.branch("c", "b", 60, {"extra": 1})
    log_steps(c, model, 61, 70, 3.0)
    c.finish()

    b2 = start(config={"lr": 3}, resume_from="b?_step=55")  # rewind of a fork
    assert b2.id == "b" and b2.starting_step == 56
    assert b2.forked_from is not None and b2.forked_from["archived"] is True
    model.branch("b", "b", 55, {"lr": 3})
    old_b = dict(model.visible["b"])
    log_steps(b2, model, 56, 90, 4.0)
    b2.finish()

    d = start("d", fork_from="b?_step=58")  # fork of a rewound run
    model.branch("d", "b", 58, {})
    log_steps(d, model, 59, 65, 5.0)
    d.finish()

    archived_a = dict(model.visible["a"])
    a2 = start(resume_from="a?_step=30")  # rewind twice
    model.branch("a", "a", 30, {})
    log_steps(a2, model, 31, 40, 6.0)
    a2.finish()
    a3 = start(resume_from="a?_step=35")
    model.branch("a", "a", 35, {})
    log_steps(a3, model, 36, 45, 7.0)
    a3.finish()

    entity = backend.entity
    for run_id in ("a", "b", "c", "d"):
        check(backend.run(entity, p, run_id), model)
    # Archived incarnations keep exactly what they had; oldest first.
    archived = backend.run(entity, p, "a").archived
    assert len(archived) == 2 and all(x.read_only for x in archived)
    assert [x.incarnation for x in archived] == [1, 2]
    steps, values = archived[0].metric("loss")
    assert steps.tolist() == sorted(archived_a)
    assert all(math.isclose(v, archived_a[int(s)]["loss"]) for s, v in zip(steps, values, strict=True))
    (b_archived,) = backend.run(entity, p, "b").archived
    steps, _ = b_archived.metric("loss")
    assert steps.tolist() == list(range(0, 80)) and max(old_b) == 55
    # The source of a fork is untouched by the fork.
    assert [f.id for f in backend.run(entity, p, "b").forks] == ["c", "d"]


def test_seed_scripts_run_unchanged(backend: Backend, tmp_path: Path) -> None:
    env = {"BRANCHLINE_QUIET": "1", "BRANCHLINE_DISABLE_STATS": "1", **backend.env()}
    rewind = run_python((SEEDS / "rewind_seed.py").read_text(), tmp_path, env=env)
    assert rewind.returncode == 0, rewind.stderr
    rewound_id = rewind.stdout.split()[-1]
    fork = run_python((SEEDS / "fork_seed.py").read_text(), tmp_path, env=env)
    assert fork.returncode == 0, fork.stderr
    source_id, fork_id = fork.stdout.split()[1], fork.stdout.split()[3]
    entity, project = "your_entity_name", "your_project_name"
    # Rewound run: steps 0..200 from the archived incarnation, then 201..400 of its own:
    # each loop iteration logs two rows ("metric" with "step", then "additional_metric").
    rewound = backend.run(entity, project, rewound_id)
    metric = history(rewound, "metric")
    assert list(metric) == list(range(0, 201)) + list(range(201, 401, 2))
    assert [metric[s] for s in range(0, 201)] == list(range(0, 201))
    assert metric[201] == 200 and metric[299] == 249
    assert math.isclose(metric[301], 250 + 2 * math.sin(250 / 3.0))
    additional = history(rewound, "additional_metric")
    assert list(additional) == list(range(202, 401, 2))
    assert math.isclose(additional[202], 200 * 1.1)
    (archived,) = rewound.archived
    steps, values = archived.metric("metric")
    assert steps.tolist() == list(range(300)) and values.tolist() == list(range(300))
    assert rewound.forked_from is not None and rewound.forked_from["incarnation_id"] == archived.incarnation_id
    assert rewound.summary["_step"] == 400
    # Fork: the source is untouched; the fork sees 0..200 then its own rows.
    assert list(history(backend.run(entity, project, source_id), "metric").values()) == list(range(300))
    fork = backend.run(entity, project, fork_id)
    assert list(history(fork, "metric")) == list(range(0, 201)) + list(range(201, 401, 2))
    assert fork.forked_from is not None and fork.forked_from["run_id"] == source_id
    # Seed 000/004 second half: fork from a rewound run at step 500 (past its last step: a warning).
    # Give the rewound run more history first so step 500 exists.
    extend = run_python(
        f"""
        import branchline as wandb
        run = wandb.init(project="{project}", entity="{entity}", id="{rewound_id}", resume="allow")
        for i in range(401, 700):
            run.log({{"metric": i}})
        run.finish()
        """,
        tmp_path,
        env=env,
    )
    assert extend.returncode == 0, extend.stderr
    script = (SEEDS / "fork_rewound_seed.py").read_text()
    forked_rewound = run_python(script.replace("sys.argv[1]", repr(rewound_id)), tmp_path, env=env)
    assert forked_rewound.returncode == 0, forked_rewound.stderr
    new_fork = forked_rewound.stdout.split()[-1]
    metric = history(backend.run(entity, project, new_fork), "metric")
    # The fork logs from step 501 on: step 501 holds i=500, step 1000 holds i=999.
    assert metric[500] == 500 and metric[501] == 1500 and metric[1000] == 2997
    assert metric[200] == 200 and metric[301] == pytest.approx(250 + 2 * math.sin(250 / 3.0))


# The argument rules (parsing, ids, mutual exclusion) are tested in process in test_run_rules.py;
# these need the source to be looked up where it is stored.
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fork_from": "missing?_step=1"}, branchline.RunNotFoundError, "no run 'missing'"),
        ({"resume_from": "missing?_step=1"}, branchline.RunNotFoundError, "no run 'missing'"),
    ],
)
def test_branch_errors(
    backend: Backend, quiet: dict[str, Any], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    src = branchline.init(project="err", id="src", settings=quiet)
    src.log({"a": 1})
    src.finish()
    with pytest.raises(error, match=message):
        branchline.init(project="err", settings=quiet, **kwargs)


def test_float_step_means_its_integer_part(backend: Backend, quiet: dict[str, Any]) -> None:
    src = branchline.init(project="f", id="src", settings=quiet)
    for i in range(10):
        src.log({"a": i})
    src.finish()
    fork = branchline.init(project="f", fork_from="src?_step=1.5", settings=quiet)
    assert fork.starting_step == 2 and fork.forked_from["step"] == 1  # type: ignore[index]
    fork.finish()


def test_step_past_the_end_warns_once_and_inherits_everything(
    backend: Backend, quiet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    src = branchline.init(project="f", id="src", settings=quiet)
    for i in range(5):
        src.log({"a": i})
    src.finish()
    capsys.readouterr()
    fork = branchline.init(project="f", fork_from="src?_step=100", settings=quiet)
    assert capsys.readouterr().err.count("past the last step") == 1
    assert fork.starting_step == 101
    fork.log({"a": 42})
    fork.finish()
    assert history(backend.run(fork.entity, "f", fork.id), "a") == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 101: 42}


def test_rewinding_a_running_run_is_refused(backend: Backend, quiet: dict[str, Any]) -> None:
    live = branchline.init(project="live", id="busy", settings=quiet)
    live.log({"a": 1})
    with pytest.raises(branchline.UsageError, match="still running"):
        branchline.init(project="live", resume_from="busy?_step=0", reinit="create_new", settings=quiet)
    live.finish()
    rewound = branchline.init(project="live", resume_from="busy?_step=0", settings=quiet)
    assert rewound.id == "busy"
    rewound.finish()


def test_branching_copies_no_history(backend: Backend, quiet: dict[str, Any]) -> None:
    src = branchline.init(project="o1", id="src", settings=quiet)
    for i in range(5000):
        src.log({"a": i})
    src.finish()
    with backend.open_store() as store:  # storage-level check: the server's own store in server mode

        def count() -> Any:
            with store.engine.connect() as conn:
                return conn.exec_driver_sql("SELECT count(*), sum(count) FROM history_chunks").one()

        before = count()
        fork = branchline.init(project="o1", fork_from="src?_step=4000", settings=quiet)
        rewind = branchline.init(project="o1", resume_from="src?_step=10", reinit="create_new", settings=quiet)
        assert count() == before  # no chunk rows written by branching
        fork.finish()
        rewind.finish()


def test_crash_in_the_middle_of_a_fork_then_sync(backend: Backend, tmp_path: Path) -> None:
    setup = run_python(
        """
        import branchline
        run = branchline.init(project="fc", id="src", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        for i in range(100):
            run.log({"i": i})
        run.finish()
        """,
        tmp_path,
        env=backend.env(),
    )
    assert setup.returncode == 0, setup.stderr
    script = tmp_path / "forker.py"
    script.write_text(
        "import branchline\n"
        "run = branchline.init(project='fc', id='fk', fork_from='src?_step=40', settings={'quiet': True, 'x_disable_stats': True, 'console': 'off'})\n"
        "print('writer', run._res.writer.proc.pid, flush=True)\n"
        "i = 41\n"
        "while True:\n"
        "    run.log({'i': i * 10})\n"
        "    print(i, flush=True)\n"
        "    i += 1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))} | backend.env()
    child = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    writer_pid = int(child.stdout.readline().split()[1])
    time.sleep(0.4)
    child.send_signal(signal.SIGKILL)
    os.kill(writer_pid, signal.SIGKILL)
    out, _ = child.communicate()
    last = int([line for line in out.split() if line.isdigit()][-1])
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert synced.returncode == 0, synced.stderr
    view = backend.run(backend.entity, "fc", "fk")
    got = history(view, "i")
    assert [got[s] for s in range(41)] == list(range(41))
    assert all(got[s] == s * 10 for s in range(41, last + 1))
    assert view.state == "crashed" and view.forked_from is not None and view.forked_from["run_id"] == "src"


@pytest.mark.embedded_only("offline runs branch from the local store, which a remote-mode source is not in")
def test_offline_fork_and_rewind_get_their_lineage_when_synced(tmp_path: Path) -> None:
    setup = run_python(
        """
        import branchline
        run = branchline.init(project="ol", id="src", config={"lr": 1, "keep": 2}, settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        for i in range(20):
            run.log({"i": i})
        run.finish()
        q = {"quiet": True, "x_disable_stats": True, "console": "off"}
        fork = branchline.init(project="ol", id="fk", mode="offline", fork_from="src?_step=5", config={"lr": 2}, settings=q)
        assert fork.starting_step == 6
        for i in range(6, 9):
            fork.log({"i": -i})
        fork.finish()
        rewind = branchline.init(project="ol", mode="offline", resume_from="src?_step=10", settings=q)
        for i in range(11, 13):
            rewind.log({"i": i * 100})
        rewind.finish()
        """,
        tmp_path,
    )
    assert setup.returncode == 0, setup.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert synced.returncode == 0, synced.stderr
    with store_at(tmp_path) as store:
        entity = getpass.getuser()
        fork = store.require_run(entity, "ol", "fk")
        assert fork.forked_from["run_id"] == "src" and fork.config == {"lr": 2, "keep": 2}  # type: ignore[index]
        assert rows(store, entity, "ol", "fk", "i") == {**{s: s for s in range(6)}, 6: -6, 7: -7, 8: -8}
        src = store.require_run(entity, "ol", "src")
        assert src.forked_from is not None and src.forked_from["archived"]
        assert rows(store, entity, "ol", "src", "i") == {**{s: s for s in range(11)}, 11: 1100, 12: 1200}


def test_delete_a_source_keeps_forks_readable(backend: Backend, tmp_path: Path, quiet: dict[str, Any]) -> None:
    src = branchline.init(project="del", id="src", settings=quiet)
    for i in range(50):
        src.log({"i": i})
    src.finish()
    rewound = branchline.init(project="del", resume_from="src?_step=30", settings=quiet)
    rewound.log({"i": 1000})
    rewound.finish()
    fork = branchline.init(project="del", id="fk", fork_from="src?_step=20", settings=quiet)
    fork.log({"i": -1})
    fork.finish()
    entity = backend.entity
    backend.run(entity, "del", "src").delete()
    with pytest.raises(branchline.errors.RunNotFoundError):
        backend.run(entity, "del", "src")
    assert [r.id for r in backend.reader.runs(f"{entity}/del")] == ["fk"]
    forked = backend.run(entity, "del", "fk")
    assert history(forked, "i") == {**{s: s for s in range(21)}, 21: -1}
    assert forked.forked_from is not None and forked.forked_from["deleted"] is True
    forked.delete()
    with backend.open_store() as store, store.engine.connect() as conn:
        remaining = conn.exec_driver_sql("SELECT count(*) FROM incarnations").scalar()
        chunks = conn.exec_driver_sql("SELECT count(*) FROM history_chunks").scalar()
    assert remaining == 0 and chunks == 0  # the last reader gone, the detached history goes too
    shutil.rmtree(tmp_path / "branchline" / "runs", ignore_errors=True)


def test_a_fork_reads_exactly_like_a_run_that_logged_the_same_values(backend: Backend, quiet: dict[str, Any]) -> None:
    def row(step: int, branch: float) -> dict[str, Any]:
        return {"loss": math.sin(step / 50) + branch, "acc": step * 1e-4, "phase": f"p{step // 1000}"}

    source = branchline.init(project="same", id="source", settings=quiet)
    for step in range(6000):  # several chunks on both sides of the branch point
        source.log(row(step, 0.0))
    source.finish()
    fork = branchline.init(project="same", id="fork", fork_from="source?_step=4321", settings=quiet)
    plain = branchline.init(project="same", id="plain", reinit="create_new", settings=quiet)
    for step in range(4322):
        plain.log(row(step, 0.0))
    for step in range(4322, 7000):
        fork.log(row(step, 1.0))
        plain.log(row(step, 1.0))
    fork.finish()
    plain.finish()

    forked, logged = backend.run(fork.entity, "same", "fork"), backend.run(plain.entity, "same", "plain")
    for key in ("loss", "acc"):
        f_steps, f_values = forked.metric(key)
        p_steps, p_values = logged.metric(key)
        assert f_steps.tolist() == p_steps.tolist() and f_values.tolist() == p_values.tolist()
    strip = ("_runtime", "_timestamp")  # wall-clock columns differ between two processes by nature
    f_rows = [{k: v for k, v in r.items() if k not in strip} for r in forked.scan_history(page_size=997)]
    p_rows = [{k: v for k, v in r.items() if k not in strip} for r in logged.scan_history(page_size=997)]
    assert len(f_rows) == 7000 and f_rows == p_rows
    f_sampled = forked.history(samples=300, keys=["loss", "acc"], pandas=False)
    p_sampled = logged.history(samples=300, keys=["loss", "acc"], pandas=False)
    assert [{k: r[k] for k in ("_step", "loss", "acc")} for r in f_sampled] == [
        {k: r[k] for k in ("_step", "loss", "acc")} for r in p_sampled
    ]
    assert forked.summary["loss"] == logged.summary["loss"] and forked.summary["phase"] == "p6"
