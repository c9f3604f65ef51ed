"""Reading the records a worker stores for raw messages, within bounds (the fuzz tests' checks)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from task_server.testing import WorkerProcess


def seconds_until_result(
    store: redis.Redis, task_id: str, expected: Any, *, started: float, bound: float, worker: WorkerProcess
) -> float:
    """Seconds from `started` until `task_id` has a record holding `expected` (fails past `bound`)."""
    while time.monotonic() - started < bound:
        record = store.get(f"celery-task-meta-{task_id}")
        if record is not None:
            assert json.loads(record)["result"] == expected
            return time.monotonic() - started
        time.sleep(0.005)
    raise AssertionError(f"{task_id} got no answer within {bound} s\n{worker.log()[-3000:]}")


def missing_records(store: redis.Redis, task_ids: list[str], *, bound: float) -> list[str]:
    """The ids still without a record once `bound` seconds have passed (or none, as soon as all have one)."""
    deadline = time.monotonic() + bound
    missing = task_ids
    while missing and time.monotonic() < deadline:
        records = store.mget([f"celery-task-meta-{task_id}" for task_id in missing])
        missing = [task_id for task_id, record in zip(missing, records, strict=True) if record is None]
        if missing:
            time.sleep(0.02)
    return missing
