"""Client memory over many calls, in a fresh process: `python -m bench._memory URL CALLS [WAVE]`.

Prints one JSON line: resident memory after a warm-up and after the calls, and what the result
watcher still holds (nothing, once every call is answered). The calls are awaited from one loop,
`WAVE` at a time (default: all at once, which measures the peak of that many calls in flight).
`URL` = `baseline` measures plain asyncio instead: as many coroutines awaiting
`concurrent.futures` futures resolved by a thread, the floor any thread-backed asyncio client
pays for that many calls in flight at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import sys
import threading
from pathlib import Path

from task_client import TaskClient


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def calls(client: TaskClient, count: int, wave: int | None = None) -> None:
    add = client.aio.add.with_options(timeout=900)
    wave = wave or count
    for start in range(0, count, wave):
        numbers = range(start, min(count, start + wave))
        results = await asyncio.gather(*(add(i, 1) for i in numbers))
        assert results == [i + 1 for i in numbers]


async def baseline_calls(count: int) -> None:
    futures: list[concurrent.futures.Future[int]] = [concurrent.futures.Future() for _ in range(count)]

    async def one(future: concurrent.futures.Future[int]) -> int:
        async with asyncio.timeout(900):
            return await asyncio.wrap_future(future)

    def resolve() -> None:
        for number, future in enumerate(futures):
            future.set_result(number)

    waiting = asyncio.gather(*(one(future) for future in futures))
    await asyncio.sleep(0)  # every coroutine is waiting before the thread resolves them
    thread = threading.Thread(target=resolve)
    thread.start()
    assert await waiting == list(range(count))
    thread.join()


def baseline(count: int) -> None:
    asyncio.run(baseline_calls(200))
    gc.collect()
    before = resident_mb()
    asyncio.run(baseline_calls(count))
    gc.collect()
    after = resident_mb()
    print(json.dumps({"calls": count, "growth_mb": round(after - before, 2)}))


def main(url: str, count: int, wave: int | None) -> None:
    with TaskClient(url) as client:
        asyncio.run(calls(client, 200))  # warm-up: imports, connections, caches
        assert client.add.map([(1, 2)] * 10) == [3] * 10
        gc.collect()
        before = resident_mb()
        asyncio.run(calls(client, count, wave))
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
    if sys.argv[1] == "baseline":
        baseline(int(sys.argv[2]))
    else:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
