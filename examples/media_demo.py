"""A wandb-style PyTorch training script with media: watch, images, a table of images, a confusion matrix.

Synthetic 8×8 "digits" stand in for MNIST, so it runs offline in seconds:

python examples/media_demo.py --dir media-demo
branchline ui --dir media-demo
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

import branchline as wandb

CLASSES = 4


def batch(rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the quadrant that is bright, with noise."""
    labels = rng.integers(0, CLASSES, size)
    images = rng.normal(0.0, 0.3, (size, 1, 8, 8)).astype(np.float32)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 2)
        images[i, 0, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 1.0
    return torch.from_numpy(images), torch.from_numpy(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    run = wandb.init(project="media-demo", dir=args.dir, config={"lr": 0.1}, settings={"quiet": True})
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 4))
    wandb.watch(model, log="all", log_freq=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=run.config.lr)
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        x, y = batch(rng, 32)
        optimizer.zero_grad()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        row: dict[str, object] = {"loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item()}
        if step % 20 == 0:
            row["examples"] = [wandb.Image(x[i], caption=f"label {int(y[i])}") for i in range(4)]
        wandb.log(row)
    x, y = batch(rng, 64)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1).numpy()
    table = wandb.Table(columns=["image", "label", "prediction"])
    for i in range(8):
        table.add_data(wandb.Image(x[i]), int(y[i]), int(probs[i].argmax()))
    names = ["top-left", "top-right", "bottom-left", "bottom-right"]
    wandb.log(
        {
            "predictions": table,
            "confusion": wandb.plot.confusion_matrix(probs=probs, y_true=y.numpy(), class_names=names),
            "pr": wandb.plot.pr_curve(y.numpy(), probs, labels=names),
            "logits": wandb.Histogram(probs.ravel()),
        }
    )
    wandb.finish()


if __name__ == "__main__":
    main()
