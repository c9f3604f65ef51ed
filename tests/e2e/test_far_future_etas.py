"""issue 19: a worker holds scheduled calls in memory only up to its horizon (`--eta-horizon`);
later ones wait in Redis (`task-sdk-deferred`) and still run when due, once.

Before, 20,000 calls due in year 9999 took a worker from 61 to 268 MB, and each was received
again after the visibility timeout. Measured here with 2,000: +19 MB and 2,000 unacked entries
before, +0 MB and none after.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import redis

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import serving
from .raw_messages import v1_envelope

pytestmark = pytest.mark.e2e

HORIZON = 2.0
CALLS = 2_000


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_far_future_calls_wait_in_redis_and_near_ones_run_when_due(private_redis: RedisProcess, tmp_path: Path) -> None:
    args = ["--eta-horizon", str(HORIZON)]
    with (
        redis.Redis.from_url(private_redis.url) as broker,
        WorkerProcess(private_redis.url, concurrency=1, extra_args=args, logdir=str(tmp_path), **serving()) as worker,
        TaskClient(private_redis.url) as client,
    ):
        worker.start()
        assert client.add(1, 1) == 2
        before = rss_mb(worker.pid)
        year_9999 = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
        far = client.add.with_options(eta=year_9999).submit_many([(i, i) for i in range(CALLS)])
        wait_until(lambda: broker.zcard("task-sdk-deferred") == CALLS, 60, "every far call to be deferred")
        assert broker.llen("math") == 0
        # None held by the worker: the last removal from `unacked` may ride on its next write (<= 1 s).
        wait_until(lambda: broker.hlen("unacked") == 0, 10, "the worker to hold no deferred call")
        assert rss_mb(worker.pid) - before < 8.0  # +19 MB when the worker held them
        assert all(handle.status == "PENDING" for handle in far[:10])

        # Due in 5 s: deferred (beyond 2 s), requeued when within the horizon, run when due, once.
        soon = client.add.with_options(countdown=5).submit(4, 7)
        assert soon.result(timeout=30) == 11
        # The worker logs "succeeded" after it stores the result, which the caller may read first.
        wait_until(lambda: f"math.add[{soon.id}] succeeded" in worker.log(), 10, "the worker to log the call")
        assert "requeued 1 deferred call(s)" in worker.log()
        assert worker.log().count(f"math.add[{soon.id}] received") == 1  # only once within the horizon
        assert worker.log().count(f"math.add[{soon.id}] succeeded") == 1
        assert broker.zcard("task-sdk-deferred") == CALLS


def test_a_protocol_v1_call_due_far_ahead_waits_in_redis_too(private_redis: RedisProcess, tmp_path: Path) -> None:
    """A v1 message (gocelery, Celery 3) carries its eta in its body, not in headers. Before (found by
    the round's review), such a call due in year 9999 was held in the worker's memory with an unacked
    entry, to come back after the visibility timeout and be held again; now it is deferred as a v2
    one is, and one due within the horizon still runs when due."""
    args = ["--eta-horizon", str(HORIZON)]
    with (
        redis.Redis.from_url(private_redis.url) as broker,
        WorkerProcess(private_redis.url, concurrency=1, extra_args=args, logdir=str(tmp_path), **serving()) as worker,
        TaskClient(private_redis.url) as client,
    ):
        worker.start()
        far_id, soon_id = str(uuid.uuid4()), str(uuid.uuid4())
        soon_eta = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)).isoformat()
        broker.lpush("celery", v1_envelope("math.add", [1, 2], {}, task_id=far_id, eta="9999-01-01T00:00:00+00:00"))
        broker.lpush("celery", v1_envelope("math.add", [4, 7], {}, task_id=soon_id, eta=soon_eta))
        assert client.add.handle(soon_id).result(timeout=30) == 11
        wait_until(lambda: broker.zcard("task-sdk-deferred") == 1, 30, "the far v1 call to be deferred")
        wait_until(lambda: broker.hlen("unacked") == 0, 10, "the worker to hold no deferred call")
        assert client.add.handle(far_id).status == "PENDING"
        assert f"math.add[{far_id}] received" not in worker.log()
