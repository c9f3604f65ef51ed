"""Every record a worker stores carries the digest of the arguments it was computed from, even when an
early admission asked for the same id and attempt (`_preadmission`) was never claimed: a message with
invalid arguments is asked for on its way to a thread and then never admitted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from task_contracts.wire import CALL_DIGEST_FIELD, call_digest
from task_server.testing import RedisProcess, WorkerProcess, wait_until

from ..catalog import serving
from .raw_messages import envelope, json_body

pytestmark = pytest.mark.e2e


def test_a_record_carries_the_digest_of_its_own_arguments(private_redis: RedisProcess, tmp_path: Path) -> None:
    store = redis.Redis.from_url(private_redis.url)
    task_id = "reused-id"
    key = f"celery-task-meta-{task_id}"
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving()) as worker:
        worker.start()
        # Invalid arguments: asked for early on its way to a thread, refused before its admission is claimed.
        store.lpush("math", envelope("math.mul", json_body(["six", 7], {}), task_id=task_id, queue="math"))
        wait_until(lambda: store.exists(key) == 1, 30, "the invalid call's record")
        store.delete(key)
        # The same id and attempt with valid arguments, not asked for early (an `expires` keeps it from that).
        expires = {"expires": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))}
        item = envelope("math.mul", json_body([6, 7], {}), task_id=task_id, queue="math", headers=expires)
        store.lpush("math", item)
        wait_until(lambda: store.exists(key) == 1, 30, "the valid call's record")
    record = json.loads(store.get(key))
    assert record[CALL_DIGEST_FIELD] in (None, "", call_digest([6, 7], {}))
    store.close()
