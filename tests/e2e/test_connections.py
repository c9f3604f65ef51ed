"""A batch is published through one connection, pipelined: measured on a private Redis's own counters."""

from __future__ import annotations

import pytest
import redis

from task_client import TaskClient
from task_server.testing import RedisProcess

pytestmark = pytest.mark.e2e

CALLS = 500


def _stats(store: redis.Redis) -> dict[str, int]:
    info = store.info("stats")
    return {key: int(info[key]) for key in ("total_connections_received", "total_reads_processed")}


def test_a_batch_publish_uses_one_connection_and_few_round_trips(private_redis: RedisProcess) -> None:
    store = redis.Redis.from_url(private_redis.url)
    try:
        with TaskClient(private_redis.url) as client:
            idle = client.add.with_options(queue="idle")
            idle.submit(0, 0)  # opens the broker connection
            before = _stats(store)
            handles = idle.submit_many([(i, i) for i in range(CALLS)])
            after = _stats(store)
            assert len(handles) == CALLS and store.llen("idle") == CALLS + 1
            assert after["total_connections_received"] - before["total_connections_received"] <= 1
            # Redis reads a pipeline in a few socket reads; one publish per call would need CALLS reads.
            assert after["total_reads_processed"] - before["total_reads_processed"] < CALLS / 4

            before = _stats(store)
            for i in range(20):
                idle.submit(i, i)
            after = _stats(store)
            # The counter is sensitive: unpipelined publishes cost one read each.
            assert after["total_reads_processed"] - before["total_reads_processed"] >= 20
    finally:
        store.close()
