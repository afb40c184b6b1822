"""SDK-level fork/rewind timing for bench_fork.py, in a fresh process on a fresh copy of the store.

`python _fork_child.py '<json>'` with keys dir, project, entity, warm_step and
ops: [[label, kind, run_id, step], ...]. After an untimed warm-up run (imports, hooks) and an
untimed fork and rewind of run `warm`, times each `branchline.init(fork_from=...)` or
`init(resume_from=...)` call, then finishes the run (untimed). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def main() -> None:
    args = json.loads(sys.argv[1])
    import branchline

    settings = {"quiet": True}
    warm = branchline.init(project="warmup", entity=args["entity"], dir=args["dir"], settings=settings)
    warm.log({"x": 1.0})
    warm.finish()
    for kind in ("fork_from", "resume_from"):
        extra = {kind: f"warm?_step={args['warm_step']}"}
        branchline.init(project=args["project"], entity=args["entity"], dir=args["dir"], settings=settings, **extra)
        branchline.finish()
    out: dict[str, Any] = {}
    for label, kind, run_id, step in args["ops"]:
        moment = f"{run_id}?_step={step}"
        t0 = time.perf_counter()
        if kind == "fork":
            run = branchline.init(
                project=args["project"], entity=args["entity"], dir=args["dir"], fork_from=moment, settings=settings
            )
        else:
            run = branchline.init(
                project=args["project"], entity=args["entity"], dir=args["dir"], resume_from=moment, settings=settings
            )
        out[label] = time.perf_counter() - t0
        out[f"{label}_starting_step"] = run.starting_step
        run.finish()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
