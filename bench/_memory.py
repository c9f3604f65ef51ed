"""Memory of a calling process, measured the same way for every side, each in a fresh process.

    python -m bench._memory ours  URL CALLS   # client.add.map(..., chunk_size=1): one message per call
    python -m bench._memory stock URL CALLS   # group(send_task signatures) + join_native on a stock worker
    python -m bench._memory stream URL CALLS  # client.add.imap over CALLS calls, streamed

Each prints one JSON line: resident memory after the same warm-up (200 calls) and after the calls
(`growth_mb`); `stream` also gives its throughput and the peak resident memory seen while streaming.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import group

from task_client import TaskClient

from ._stock import stock_app

WARM_UP = 200
TIMEOUT = 900.0


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measured(run: Callable[[int], Any], calls: int) -> dict[str, Any]:
    run(WARM_UP)
    gc.collect()
    before = resident_mb()
    started = time.perf_counter()
    extra = run(calls) or {}
    seconds = time.perf_counter() - started
    gc.collect()
    after = resident_mb()
    return {
        "calls": calls,
        "seconds": round(seconds, 3),
        "calls_per_s": round(calls / seconds, 1),
        "before_mb": round(before, 1),
        "after_mb": round(after, 1),
        "growth_mb": round(after - before, 2),
        **extra,
    }


def ours(url: str, calls: int) -> dict[str, Any]:
    with TaskClient(url) as client:

        def run(count: int) -> None:
            pairs = [(i, 1) for i in range(count)]
            assert client.add.map(pairs, chunk_size=1, timeout=TIMEOUT) == [i + 1 for i in range(count)]

        return measured(run, calls)


def stock(url: str, calls: int) -> dict[str, Any]:
    app = stock_app(url)

    def run(count: int) -> None:
        result = group(app.signature("math.add", args=(i, 1)) for i in range(count)).apply_async()
        assert result.join_native(timeout=TIMEOUT) == [i + 1 for i in range(count)]

    try:
        return measured(run, calls)
    finally:
        app.close()


def stream(url: str, calls: int) -> dict[str, Any]:
    with TaskClient(url) as client:

        def run(count: int) -> dict[str, Any]:
            peak = resident_mb()
            for index, total in enumerate(client.add.imap((i, 1) for i in range(count))):
                if total != index + 1:
                    raise AssertionError(f"call {index}: got {total}")
                if index % 20_000 == 0:
                    peak = max(peak, resident_mb())
            return {"peak_mb": round(max(peak, resident_mb()), 1)}

        return measured(run, calls)


SIDES = {"ours": ours, "stock": stock, "stream": stream}

if __name__ == "__main__":
    print(json.dumps(SIDES[sys.argv[1]](sys.argv[2], int(sys.argv[3]))))
