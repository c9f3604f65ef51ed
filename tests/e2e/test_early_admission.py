"""Early admissions (`task_server._preadmission`) against a real worker: a call Celery drops as it is
handed to a thread (revoked in the worker's memory) is not admitted on its way, so it takes no slot of
its contract's fleet-wide concurrency limit."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from celery import Celery

from task_client import TaskClient
from task_server.testing import wait_until
from tests.e2e.raw_messages import envelope
from tests.policies import contracts
from tests.policies.fixtures import StartWorker, markers, policy_client, start_worker, wait_for_log

__all__ = ["markers", "policy_client", "start_worker"]

pytestmark = pytest.mark.e2e


def test_a_scheduled_call_revoked_in_memory_takes_no_concurrency_slot_when_dropped(
    redis_url: str, policy_client: TaskClient, start_worker: StartWorker
) -> None:
    """`policies.single` (threads, `concurrency=1`): a message without `cancel_hash` (a foreign producer)
    keeps Celery's rule, so Celery's revoke drops it when due. Its early admission took the only slot
    for the contract's bound plus a margin (35 s): the next call was sent back as "at the limit", again
    and again, until the lease ran out."""
    worker = start_worker(concurrency=1)
    store = redis.Redis.from_url(redis_url)
    someone = Celery("someone-else", broker=redis_url, set_as_current=False)
    try:
        task_id = str(uuid.uuid4())
        due = {"eta": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3))}
        body = json.dumps([[0.0], {}, {}]).encode()
        store.lpush(
            contracts.QUEUE, envelope("policies.single", body, task_id=task_id, queue=contracts.QUEUE, headers=due)
        )
        wait_for_log(worker, f"policies.single[{task_id}] received")
        someone.control.revoke(task_id)
        wait_for_log(worker, f"Tasks flagged as revoked: {task_id}")
        wait_for_log(worker, f"Discarding revoked task: policies.single[{task_id}]")
        wait_until(lambda: store.exists(f"celery-task-meta-{task_id}") == 1, 30, "the REVOKED record of the drop")
        assert store.zscore(f"task-sdk-concurrency-{contracts.single.name}", task_id) is None
        handle = policy_client.task(contracts.single).with_options(timeout=60).submit(0.0)
        assert handle.result() == 0.0
        assert worker.log().count(f"policies.single[{handle.id}] received") == 1  # never sent back as at the limit
    finally:
        someone.close()
        store.close()
