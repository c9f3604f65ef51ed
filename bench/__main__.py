"""`make bench`: task-client against raw Celery, both sides in one run on the same Redis and worker.

    .venv/bin/python -m bench            # default run (~2-3 minutes on 2 cores)
    .venv/bin/python -m bench --quick    # smaller counts, for a smoke run
    .venv/bin/python -m bench --calls 10000 --sequential 400 --publish 2000 --rounds 2

Prints a table and writes bench/results.json (every row with its client/raw ratio and target).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from task_server.testing import RedisProcess, WorkerProcess

from ._measure import Bench
from ._report import table

RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls in each batch row [10000]")
    parser.add_argument("--sequential", type=int, default=400, help="sequential round trips per side [400]")
    parser.add_argument("--publish", type=int, default=2000, help="publishes per side [2000]")
    parser.add_argument("--rounds", type=int, default=1, help="client rounds of each batch row [1]")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (both sides) [2]")
    parser.add_argument("--memory-calls", type=int, default=10_000, help="calls for the memory row [10000]")
    parser.add_argument("--quick", action="store_true", help="small counts: 2000 calls, 150 round trips")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="write a cProfile of each side and row into DIR (skews figures)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file [{RESULTS.name}]")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.sequential, args.publish, args.memory_calls = 2000, 150, 1000, 2000

    started = time.monotonic()
    with RedisProcess() as redis:
        redis.start()
        with WorkerProcess(redis.url, concurrency=args.concurrency, pool="prefork") as worker:
            worker.start()
            print(f"redis {redis.url}, worker prefork x{args.concurrency}; measuring...", file=sys.stderr)
            with Bench(redis.url, profile_dir=args.profile) as bench:
                rows = [
                    *bench.sequential(args.sequential),
                    *bench.publish(args.publish),
                    *bench.batches(args.calls, args.rounds),
                    *bench.memory(args.memory_calls),
                ]
    elapsed = time.monotonic() - started
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {key: value for key, value in vars(args).items() if key not in ("output", "profile")},
        "elapsed_s": round(elapsed, 1),
        "rows": [row.as_dict() for row in rows],
    }
    print(table(rows))
    print(
        f"\n{sum(r.met for r in rows if r.met is not None)} of {sum(r.met is not None for r in rows)} targets met;"
        f" {elapsed:.0f} s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
