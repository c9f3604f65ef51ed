"""Client memory over many calls, in a fresh process: `python -m bench._memory URL CALLS`.

Prints one JSON line: resident memory after a warm-up and after the calls, and what the result
watcher still holds (nothing, once every call is answered).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

from task_client import TaskClient


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def calls(client: TaskClient, count: int) -> None:
    add = client.aio.add.with_options(timeout=900)
    results = await asyncio.gather(*(add(i, 1) for i in range(count)))
    assert results == [i + 1 for i in range(count)]


def main(url: str, count: int) -> None:
    with TaskClient(url) as client:
        asyncio.run(calls(client, 200))  # warm-up: imports, connections, caches
        assert client.add.map([(1, 2)] * 10) == [3] * 10
        gc.collect()
        before = resident_mb()
        asyncio.run(calls(client, count))
        gc.collect()
        after = resident_mb()
        watcher = client._runtime.watcher
        held = {"waiters": len(watcher._waiters), "requests": len(watcher._requests)}
    print(
        json.dumps(
            {
                "calls": count,
                "before_mb": round(before, 1),
                "after_mb": round(after, 1),
                "growth_mb": round(after - before, 2),
                "watcher_holds": held,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
