"""One training process for bench_wandb.py: `python _wandb_child.py '<json args>'`.

The same loop for both clients: `import wandb` (the real client, run by its own venv's python) or
`import branchline as wandb` (our SDK, remote mode through the environment). N rows of 10 floats
are built before timing. Writes the wall clock at which `finish()` returned to `args["mark"]` as
soon as it returns (the parent polls the store from then on), and prints one JSON line of timings.
Standard library plus the tracker under test only.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time


def main() -> None:
    args = json.loads(sys.argv[1])
    n = int(args["n"])
    rnd = random.Random(0)
    rows = [{f"metric_{k}": rnd.random() for k in range(10)} for _ in range(n)]
    began = time.time()
    wandb = importlib.import_module(args["module"])
    run = wandb.init(project=args["project"], id=args["run_id"])
    inited = time.time()
    for row in rows:
        run.log(row)
    logged = time.time()
    run.finish()
    finished = time.time()
    with open(args["mark"], "w") as mark:
        mark.write(repr(finished))
    timings = {"init_s": inited - began, "log_s": logged - inited, "finish_s": finished - logged}
    print(json.dumps({**timings, "log_us": (logged - inited) / n * 1e6, "finished_at": finished}), flush=True)


if __name__ == "__main__":
    main()
