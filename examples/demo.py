"""Log a small project of demo runs, with a fork and a rewind, into the embedded store.

python examples/demo.py --dir demo
branchline ui --dir demo
"""

from __future__ import annotations

import argparse
import math
import random

import branchline as wandb

PROJECT = "demo"
QUIET = {"quiet": True, "x_stats_sampling_interval": 0.5}


def curve(step: int, lr: float, seed: int, noise: float = 0.03) -> dict[str, float]:
    rng = random.Random(seed * 100_003 + step)
    loss = 2.5 * math.exp(-lr * step / 40) + 0.1 + rng.gauss(0, noise)
    acc = 1 - loss / 3 + rng.gauss(0, noise / 2)
    return {"train/loss": loss, "train/acc": acc, "val/loss": loss * 1.1 + 0.05, "lr": lr * (0.99 ** (step // 10))}


def train(run: wandb.Run, start: int, stop: int, lr: float, seed: int) -> None:
    for step in range(start, stop):
        run.log(curve(step, lr, seed))
        if step % 50 == 0:
            print(f"step {step}: loss {run.summary['train/loss']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="demo", help="directory that gets the branchline/ store")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    steps = args.steps

    base_ids = []
    for seed, (lr, arch) in enumerate([(0.5, "mlp"), (1.0, "mlp"), (2.0, "cnn"), (1.5, "cnn")]):
        run = wandb.init(
            project=PROJECT,
            dir=args.dir,
            config={"lr": lr, "arch": arch, "batch_size": 64, "seed": seed},
            group=arch,
            job_type="train",
            tags=["baseline"],
            notes=f"baseline {arch} with lr={lr}",
            settings=QUIET,
        )
        run.define_metric("val/loss", summary="min,last")
        train(run, 0, steps, lr, seed)
        run.finish()
        base_ids.append(run.id)

    # Fork the best baseline at step 150 and try a lower learning rate from there.
    fork = wandb.init(
        project=PROJECT,
        dir=args.dir,
        fork_from=f"{base_ids[2]}?_step={steps // 2}",
        config={"lr": 0.5},
        tags=["fork"],
        notes="lower lr from the middle of the cnn run",
        settings=QUIET,
    )
    train(fork, fork.starting_step, steps, 0.5, 42)
    fork.finish()

    # Rewind a baseline to step 100 (its first incarnation is archived) and continue differently.
    rewound = wandb.init(project=PROJECT, dir=args.dir, resume_from=f"{base_ids[0]}?_step=100", settings=QUIET)
    train(rewound, rewound.starting_step, steps, 3.0, 7)
    rewound.finish()

    print(f"Logged {len(base_ids)} runs, a fork ({fork.id}) and a rewind ({rewound.id}) into {args.dir}/branchline.")
    print(f"See them with: branchline ui --dir {args.dir}")


if __name__ == "__main__":
    main()
