"""MLflow (SQLite store) side of bench_read.py, run by an interpreter that has mlflow.

`python _mlflow_child.py '<json>'` with keys db, runs, points, reps, lr. Builds the database if it
does not exist (through MlflowClient: `runs` runs with params lr/batch_size/optimizer and a `loss`
metric, plus one run `big` with `points` points of `loss`), then times the same queries as
bench_read.py does on branchline. Prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time
from typing import Any

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]


def build(client: Any, runs: int, points: int) -> None:
    from mlflow.entities import Metric, Param

    exp = client.create_experiment("table")
    rnd = random.Random(0)
    ts = int(time.time() * 1000)
    for i in range(runs):
        run = client.create_run(exp, run_name=f"run-{i}")
        lr = rnd.choice(LRS)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("loss", rnd.random(), ts, 0)],
            params=[
                Param("lr", repr(lr)),
                Param("batch_size", str(rnd.choice([32, 64, 128]))),
                Param("optimizer", rnd.choice(["adam", "sgd"])),
            ],
        )
        client.set_terminated(run.info.run_id)
    big_exp = client.create_experiment("series")
    big = client.create_run(big_exp, run_name="big")
    for offset in range(0, points, 1000):
        client.log_batch(
            big.info.run_id,
            metrics=[Metric("loss", rnd.random(), ts + i, i) for i in range(offset, min(points, offset + 1000))],
        )
    client.set_terminated(big.info.run_id)


def main() -> None:
    args = json.loads(sys.argv[1])
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    from mlflow.tracking import MlflowClient

    out: dict[str, Any] = {"import_s": time.perf_counter() - t0}
    uri = f"sqlite:///{args['db']}"
    if not os.path.exists(args["db"]):
        tmp = args["db"] + ".building"
        if os.path.exists(tmp):
            os.unlink(tmp)
        t1 = time.perf_counter()
        build(MlflowClient(f"sqlite:///{tmp}"), int(args["runs"]), int(args["points"]))
        os.rename(tmp, args["db"])
        out["build_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    client = MlflowClient(uri)
    table = client.get_experiment_by_name("table")
    series = client.get_experiment_by_name("series")
    big = client.search_runs([series.experiment_id], max_results=1)[0]
    out["client_s"] = time.perf_counter() - t1
    reps = int(args["reps"])

    def timed(fn: Any) -> tuple[float, Any]:
        fn()  # warm-up
        times, result = [], None
        for _ in range(reps):
            t = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times), result

    out["metric_s"], history = timed(lambda: client.get_metric_history(big.info.run_id, "loss"))
    out["metric_points"] = len(history)
    lr = repr(float(args["lr"]))
    out["runs_s"], page = timed(
        lambda: client.search_runs(
            [table.experiment_id], filter_string=f"params.lr = '{lr}'", order_by=["metrics.loss ASC"], max_results=50
        )
    )
    out["runs_page"] = len(page)
    losses = [r.data.metrics["loss"] for r in page]
    out["runs_sorted"] = losses == sorted(losses)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
