"""Media on the training thread: `log()` of an Image, a 1M-value `Histogram`, and `watch()`'s cost.

Each tracker runs in a fresh process (bench/_media_child.py), repeats interleaved. Baselines in the
same run: wandb offline when an interpreter that has it is found ($BENCH_PEER_PYTHON, else
.bench/peers-venv/bin/python), and always the floor: copying the array (and writing its bytes)
with plain numpy, and numpy's own `np.histogram`. `finish` shows the writer catching up (it
encodes every PNG after the training loop has moved on). `watch()` is measured as the median
step of a small CNN (two conv layers, batch 32, one torch thread) before and after
`watch(model, log_freq=100)`, in the same process.

    .venv/bin/python bench/bench_media.py [--reps 3] [--images 200] [--hists 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import Any

from _common import BENCH_DIR, Row, importable, machine_line, median, peer_python, print_table, spread
from _common import run_child as _run_child

CHILD = BENCH_DIR / "_media_child.py"
MS = 1000.0


def run_child(python: str, args: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-media-") as where:
        result = _run_child(python, CHILD, {**args, "dir": where}, timeout=1800, env={"WANDB_SILENT": "true"})
    if "error" in result:
        print(f"  ! {args['tracker']}: {result['error']}\n{result.get('stderr', '')}", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--hists", type=int, default=20)
    parser.add_argument("--cnn-steps", type=int, default=300, help="steps of the small CNN (0: skip watch)")
    opts = parser.parse_args()
    peer = peer_python()
    trackers = [("branchline", sys.executable), ("floor", sys.executable)]
    if peer is not None and importable(peer, "wandb"):
        trackers.append(("wandb", peer))
    print(machine_line())
    print(f"trackers: {', '.join(t for t, _ in trackers)}" + ("" if len(trackers) > 2 else " (no wandb interpreter)"))
    medians: dict[str, dict[str, list[float]]] = {t: {} for t, _ in trackers}
    for rep in range(opts.reps):
        for tracker, python in trackers:
            args = {"tracker": tracker, "n_images": opts.images, "n_hist": opts.hists, "cnn_steps": opts.cnn_steps}
            result = run_child(python, args)
            for name in ("image", "histogram", "np_histogram", "cnn_plain", "cnn_watched"):
                if name in result:
                    medians[tracker].setdefault(name, []).append(median(result[name]) * MS)
            if "finish" in result:
                medians[tracker].setdefault("finish", []).append(result["finish"] * MS)
        print(f"  repeat {rep + 1}/{opts.reps} done", file=sys.stderr)
    rows = []
    ours, floor, theirs = medians["branchline"], medians["floor"], medians.get("wandb", {})
    for what, name, target_ms, floor_name in (
        ("log() of a 224×224×3 uint8 Image", "image", 1.0, "image"),
        ("Histogram of 1M float64 values", "histogram", 5.0, "np_histogram"),
    ):
        value = median(ours.get(name, []))
        base = median(floor.get(floor_name, []))
        rows.append(
            Row(
                what,
                value,
                "ms",
                baseline=base,
                baseline_name="ms " + ("numpy copy+write" if name == "image" else "np.histogram"),
                ratio=value / base if base else None,
                target=f"≤ {target_ms:g} ms",
                status="PASS" if value <= target_ms else "MISS",
                note=spread(ours.get(name, [])),
            )
        )
        if theirs.get(name):
            other = median(theirs[name])
            rows.append(
                Row(f"  … wandb {name}", other, "ms", baseline=value, baseline_name="ms ours", ratio=other / value)
            )
    for who, numbers in (("ours", ours), ("wandb", theirs)):
        if numbers.get("cnn_plain") and numbers.get("cnn_watched"):
            plain, watched = median(numbers["cnn_plain"]), median(numbers["cnn_watched"])
            extra = watched / plain - 1
            rows.append(
                Row(
                    f"small CNN step with watch(log_freq=100) ({who})",
                    watched,
                    "ms",
                    baseline=plain,
                    baseline_name="ms unwatched",
                    ratio=watched / plain,
                    target="≤ +10%" if who == "ours" else "",
                    status=("PASS" if extra <= 0.10 else "MISS") if who == "ours" else "",
                    note=f"{extra:+.1%}",
                )
            )
    rows.append(Row("floor: numpy copy of 1M values", median(floor.get("histogram", [])), "ms"))
    rows.append(
        Row(
            "finish() (writer encodes the PNGs)", median(ours.get("finish", [])), "ms", note=f"{opts.images + 5} images"
        )
    )
    if theirs.get("finish"):
        rows.append(Row("  … wandb finish()", median(theirs["finish"]), "ms"))
    print_table("Media on the training thread", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
