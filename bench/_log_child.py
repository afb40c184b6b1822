"""One fresh-process measurement for bench_log.py: `python _log_child.py '<json args>'`.

Runs under the project's interpreter (floor, branchline) or the peers' one (wandb, mlflow,
trackio), so everything here is stdlib at import time and each tracker is imported lazily.
Prints one JSON line with the figures.

Modes:
- "loop": build N dicts of 10 random floats (before timing), import + init in a fresh store,
  N log calls, finish, then read `metric_0` back and check the count.
- "trivial": import, init, log one step, finish.
"""

from __future__ import annotations

import time

T_PROCESS = time.time()  # before any import of ours: process start -> here is interpreter start-up

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

KEYS = [f"metric_{j}" for j in range(10)]


def _maxrss_main() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _maxrss_children() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def make_rows(n: int, seed: int) -> list[dict[str, float]]:
    rnd = random.Random(seed)
    return [{k: rnd.random() for k in KEYS} for _ in range(n)]


class Tracker:
    """init / log / finish / read-back of one config."""

    name = ""

    def __init__(self, store: str) -> None:
        self.store = store

    def import_(self) -> None: ...
    def init(self) -> None: ...
    def log_fn(self) -> Callable[[dict[str, float]], Any]:
        raise NotImplementedError

    def finish(self) -> None: ...
    def read_count(self) -> int | None:
        return None


class Floor(Tracker):
    """msgpack-pack + os.write of each dict to an O_APPEND file; fsync at finish."""

    def import_(self) -> None:
        import msgpack

        self.msgpack = msgpack

    def init(self) -> None:
        os.makedirs(self.store, exist_ok=True)
        self.fd = os.open(os.path.join(self.store, "floor.msgpack"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.packer = self.msgpack.Packer()

    def log_fn(self) -> Callable[[dict[str, float]], Any]:
        pack, write, fd = self.packer.pack, os.write, self.fd

        def log(d: dict[str, float]) -> None:
            write(fd, pack(d))

        return log

    def finish(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)

    def read_count(self) -> int | None:
        with open(os.path.join(self.store, "floor.msgpack"), "rb") as handle:
            return sum(1 for row in self.msgpack.Unpacker(handle) if "metric_0" in row)


class Branchline(Tracker):
    def import_(self) -> None:
        import branchline

        self.bl = branchline

    def init(self) -> None:
        self.run = self.bl.init(project="bench", dir=self.store)

    def log_fn(self) -> Callable[[dict[str, float]], Any]:
        log: Callable[[dict[str, float]], Any] = self.run.log
        return log

    def finish(self) -> None:
        self.run.finish()

    def read_count(self) -> int | None:
        from branchline.store import open_store

        url = f"sqlite:///{os.path.join(self.store, 'branchline', 'store.db')}"
        with open_store(url) as store:
            view = store.require_run(self.run.entity, self.run.project, self.run.id)
            steps, _values = store.read_series(view.incarnation_id, "metric_0")
            return len(steps)


class BranchlineOffline(Branchline):
    """Journal only: no writer child competing for the CPU (a diagnostic, not a target)."""

    def init(self) -> None:
        self.run = self.bl.init(project="bench", dir=self.store, mode="offline")

    def read_count(self) -> int | None:
        return None


class Wandb(Tracker):
    def import_(self) -> None:
        os.environ["WANDB_MODE"] = "offline"
        os.environ["WANDB_SILENT"] = "true"
        import wandb

        self.wandb = wandb

    def init(self) -> None:
        self.run = self.wandb.init(project="bench", dir=self.store, mode="offline")

    def log_fn(self) -> Callable[[dict[str, float]], Any]:
        log: Callable[[dict[str, float]], Any] = self.run.log
        return log

    def finish(self) -> None:
        self.run.finish()


class Mlflow(Tracker):
    def import_(self) -> None:
        import mlflow

        self.mlflow = mlflow

    def init(self) -> None:
        os.makedirs(self.store, exist_ok=True)
        self.uri = f"sqlite:///{os.path.join(self.store, 'mlflow.db')}"
        self.mlflow.set_tracking_uri(self.uri)
        self.mlflow.set_experiment("bench")
        self.run = self.mlflow.start_run()
        self.step = 0

    def log_fn(self) -> Callable[[dict[str, float]], Any]:
        log_metrics = self.mlflow.log_metrics

        def log(d: dict[str, float]) -> None:
            log_metrics(d, step=self.step)
            self.step += 1

        return log

    def finish(self) -> None:
        self.mlflow.end_run()

    def read_count(self) -> int | None:
        from mlflow.tracking import MlflowClient

        return len(MlflowClient(self.uri).get_metric_history(self.run.info.run_id, "metric_0"))


class Trackio(Tracker):
    def import_(self) -> None:
        os.environ["TRACKIO_DIR"] = self.store
        import trackio

        self.trackio = trackio

    def init(self) -> None:
        self.run = self.trackio.init(project="bench", auto_log_cpu=False)

    def log_fn(self) -> Callable[[dict[str, float]], Any]:
        log: Callable[[dict[str, float]], Any] = self.trackio.log
        return log

    def finish(self) -> None:
        self.trackio.finish()

    def read_count(self) -> int | None:
        from trackio import SQLiteStorage

        return len(SQLiteStorage.get_metric_values("bench", self.run.name, "metric_0"))


TRACKERS: dict[str, type[Tracker]] = {
    "floor": Floor,
    "branchline": Branchline,
    "branchline-offline": BranchlineOffline,
    "wandb": Wandb,
    "mlflow": Mlflow,
    "trackio": Trackio,
}


def main() -> None:
    args = json.loads(sys.argv[1])
    tracker = TRACKERS[args["config"]](args["dir"])
    out: dict[str, Any] = {"config": args["config"], "mode": args["mode"]}
    n = int(args.get("n", 1))
    rows = make_rows(n if args["mode"] == "loop" else 1, int(args.get("seed", 0)))
    out["rss_after_rows"] = _maxrss_main()

    t0 = time.perf_counter()
    tracker.import_()
    t1 = time.perf_counter()
    tracker.init()
    t2 = time.perf_counter()
    out["start_to_init"] = time.time() - float(args["spawn_time"])
    out["interpreter_start"] = T_PROCESS - float(args["spawn_time"])
    out["import_s"] = t1 - t0
    out["init_s"] = t2 - t1
    out["import_init_s"] = t2 - t0

    log = tracker.log_fn()
    t3 = time.perf_counter()
    for d in rows:
        log(d)
    t4 = time.perf_counter()
    tracker.finish()
    t5 = time.perf_counter()
    out["n"] = len(rows)
    out["log_us"] = (t4 - t3) / len(rows) * 1e6
    out["finish_s"] = t5 - t4
    out["loop_finish_s"] = t5 - t3
    out["rss_main"] = _maxrss_main()
    out["rss_children"] = _maxrss_children()
    if args["mode"] == "loop" and args.get("verify", True):
        t6 = time.perf_counter()
        out["n_read"] = tracker.read_count()
        out["read_s"] = time.perf_counter() - t6
    sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
