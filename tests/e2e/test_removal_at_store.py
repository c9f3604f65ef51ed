"""A stored SUCCESS removes its message's unacked entry in the same script (`_unacked.RemovalAtStore`).

When broker and result backend are one Redis, the script that stores a call's SUCCESS record also
removes its message from kombu's unacked record, and the late ack writes nothing more. Any other
outcome (here a failure), and a result backend on another database, keep the removal at the ack.
A worker killed between the store and the ack leaves nothing to redeliver: the record is there and
the entry is gone, in one step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from task_client import TaskClient, TaskFailed
from task_contracts import math
from task_server._backend import _STORE_SHA as STORE_SHA
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import serving
from ..catalog.tasks import KILL_AFTER_STORE_ENV
from ..redis_monitor import evals_seen

pytestmark = pytest.mark.e2e

# kombu's unacked index and hash (no global key prefix here).
UNACKED_KEYS = " unacked_index unacked "


def separate_removals(seen: list[tuple[str, str]]) -> int:
    """The EVALs of kombu's unacked entry removal at the ack (`_unacked._FORGET`)."""
    return sum("ZREM', KEYS[1], ARGV[1]" in text and "HDEL', KEYS[2], ARGV[1]" in text for _, text in seen)


def stores(seen: list[tuple[str, str]]) -> list[str]:
    return [text for _, text in seen if text.startswith(f"EVALSHA {STORE_SHA} ")]


@pytest.mark.parametrize("task", ["add", "mul"], ids=["on-the-event-loop", "on-a-thread"])
def test_a_stored_success_removes_its_unacked_entry_and_the_ack_writes_nothing(
    private_redis: RedisProcess, tmp_path: Path, task: str
) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path)) as worker, TaskClient(private_redis.url) as client:
        worker.start()
        call = getattr(client, task)
        assert call(1, 1) in (1, 2)  # connections made, the store script known to Redis
        with evals_seen(private_redis.url) as seen:
            for _ in range(3):
                assert call(4, 7) in (11, 28)
            # A failure keeps the removal at the ack.
            with pytest.raises(TaskFailed):
                client.div(1, 0)
            wait_until(lambda: separate_removals(seen) >= 1, 30, "the failed call's removal at its ack")
        redis_client = redis.Redis.from_url(private_redis.url)
        wait_until(lambda: redis_client.hlen("unacked") == 0, 30, "an empty unacked record")
        assert redis_client.zcard("unacked_index") == 0
        redis_client.close()
    stored = stores(seen)
    assert len(stored) == 4, seen
    assert all(text.startswith(f"EVALSHA {STORE_SHA} 5 ") and UNACKED_KEYS in text for text in stored[:3]), stored
    assert stored[3].startswith(f"EVALSHA {STORE_SHA} 3 ") and UNACKED_KEYS not in stored[3], stored
    assert separate_removals(seen) == 1, seen  # the failure's only


def test_a_result_backend_on_another_database_keeps_the_removal_at_the_ack(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    backend = private_redis.url.rsplit("/", 1)[0] + "/1"
    with (
        WorkerProcess(private_redis.url, result_backend=backend, logdir=str(tmp_path)) as worker,
        TaskClient(private_redis.url, backend) as client,
    ):
        worker.start()
        assert client.mul(1, 1) == 1
        with evals_seen(private_redis.url) as seen:
            for _ in range(3):
                assert client.mul(4, 7) == 28
            wait_until(lambda: separate_removals(seen) >= 3, 30, "a removal at each ack")
    assert all(text.startswith(f"EVALSHA {STORE_SHA} 3 ") for text in stores(seen)), seen


def test_a_worker_killed_after_storing_a_result_and_before_its_ack_leaves_nothing_to_redeliver(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """The caller has its result, and the message is in neither its queue nor the unacked record: no
    worker can run it again (before, its entry stayed until the visibility timeout redelivered it)."""
    killed = WorkerProcess(
        private_redis.url,
        logdir=str(tmp_path),
        extra_args=("--visibility-timeout", "5"),
        **serving({KILL_AFTER_STORE_ENV: math.mul.name}),
    )
    redis_client = redis.Redis.from_url(private_redis.url)
    with killed, TaskClient(private_redis.url) as client:
        killed.start()
        handle = client.mul.submit(6, 7)
        assert handle.result(timeout=60) == 42
        wait_until(lambda: not killed.alive(), 30, "the worker killed after the store")
        assert redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0
        assert redis_client.llen("math") == 0
        # Another worker, with the same short visibility timeout, serves the queue: the call is not run again.
        with WorkerProcess(private_redis.url, logdir=str(tmp_path), extra_args=("--visibility-timeout", "5")) as second:
            second.start()
            assert client.mul(2, 3) == 6
            assert handle.id not in second.log()
    redis_client.close()
