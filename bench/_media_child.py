"""One bench_media measurement in a fresh process: `log()` of an image, a 1M-value histogram.

Argument: JSON {"tracker": "branchline" | "wandb" | "floor", "dir": ..., "n_images": N, "n_hist": M,
"cnn_steps": K} (K steps of a small CNN before and after `watch()`, when torch is there).
Prints one JSON line: per-call seconds of each measurement, and how long finish took.
Only the standard library, numpy and the tracker under test are imported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _images(log: Any, make: Any, n: int, array: Any) -> list[float]:
    times = []
    for i in range(n + 5):
        t0 = time.perf_counter()
        log({"img": make(array)})
        if i >= 5:  # warm-up calls (imports, the first journal writes) are not timed
            times.append(time.perf_counter() - t0)
    return times


def _histograms(make: Any, n: int, values: Any) -> list[float]:
    times = []
    for i in range(n + 2):
        t0 = time.perf_counter()
        make(values)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times


def _cnn_steps(log: Any, watch: Any, steps: int) -> tuple[list[float], list[float]]:
    """Per-step seconds of a small CNN's training step, before and after `watch(model, log_freq=100)`."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 24 * 24, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))

    def step() -> float:
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        log({"loss": loss.item()})
        return time.perf_counter() - t0

    for _ in range(20):
        step()
    plain = [step() for _ in range(steps)]
    watch(model, log_freq=100)
    watched = [step() for _ in range(steps)]
    return plain, watched


def main() -> None:
    args = json.loads(sys.argv[1])
    import numpy as np

    os.chdir(args["dir"])
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    values = rng.normal(size=1_000_000)
    n_images, n_hist = int(args["n_images"]), int(args["n_hist"])
    tracker = args["tracker"]
    out: dict[str, Any] = {"tracker": tracker}
    if tracker == "floor":
        fd = os.open("floor.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        out["image"] = _images(lambda d: os.write(fd, d["img"].tobytes()), np.copy, n_images, image)
        os.close(fd)
        out["histogram"] = _histograms(np.copy, n_hist, values)
        out["np_histogram"] = _histograms(lambda v: np.histogram(v, bins=64), n_hist, values)
    elif tracker == "branchline":
        import branchline

        run = branchline.init(
            project="bench-media", settings={"quiet": True, "console": "off", "x_disable_stats": True}
        )
        out["image"] = _images(run.log, branchline.Image, n_images, image)
        out["histogram"] = _histograms(branchline.Histogram, n_hist, values)
        if args.get("cnn_steps"):
            out["cnn_plain"], out["cnn_watched"] = _cnn_steps(run.log, run.watch, int(args["cnn_steps"]))
        t0 = time.perf_counter()
        run.finish()
        out["finish"] = time.perf_counter() - t0
    else:
        import wandb

        run = wandb.init(project="bench-media", mode="offline", settings=wandb.Settings(console="off", silent=True))
        out["image"] = _images(run.log, wandb.Image, n_images, image)
        out["histogram"] = _histograms(wandb.Histogram, n_hist, values)
        if args.get("cnn_steps"):
            out["cnn_plain"], out["cnn_watched"] = _cnn_steps(run.log, run.watch, int(args["cnn_steps"]))
        t0 = time.perf_counter()
        run.finish()
        out["finish"] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
