"""One HTTP writer for bench_ingest.py: `python _ingest_child.py '<json args>'`.

Starts a run on the server, builds N records of 10 floats (before timing), waits for the common
start time, then sends them through `HttpSink` exactly as the SDK's writer process does (msgpack,
gzip, batches of 10,000) and prints one JSON line: when it started and finished sending.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import time

from branchline.runspec import RunSpec
from branchline.sdk.http_sink import HttpSink
from branchline.vocab import RecordKind


def main() -> None:
    args = json.loads(sys.argv[1])
    n, batch = int(args["n"]), int(args.get("batch", 20_000))
    sink = HttpSink(args["base_url"], args["api_key"])
    spec = RunSpec(
        entity=args["entity"],
        project="ingest",
        run_id=secrets.token_hex(4),
        incarnation_id=secrets.token_hex(8),
        session_id=secrets.token_hex(8),
        host="bench",
        started_at=time.time(),
    )
    start = sink.begin_run(spec)
    rnd = random.Random(int(args.get("seed", 0)))
    now = time.time()
    records = [
        [i + 1, int(RecordKind.HISTORY), i, now + i * 1e-3, i * 1e-3, {f"metric_{k}": rnd.random() for k in range(10)}]
        for i in range(n)
    ]
    records.append([n + 1, int(RecordKind.EXIT), 0, "finished", n * 1e-3])
    time.sleep(max(0.0, float(args["start_at"]) - time.time()))
    began = time.time()
    applied = 0
    # The writer process hands the sink up to 20,000 records at a time; the sink splits them.
    for offset in range(0, len(records), batch):
        applied = sink.apply(spec.session_id, records[offset : offset + batch])
    ended = time.time()
    sink.close()
    print(json.dumps({"began": began, "ended": ended, "applied": applied, "incarnation_id": start.incarnation_id}))


if __name__ == "__main__":
    main()
