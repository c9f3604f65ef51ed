"""Looking for a call's message on a real Redis broker (how `cancel` and `result` tell an id that
names no call): in the envelope's headers, inside its body (a chain's later links, a chunk's calls),
among the delivered unacknowledged ones, and `None` when a queue is too long to read."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from task_client import _direct
from task_client._direct import DirectPublisher
from task_client._settings import ClientSettings
from task_contracts import ConnectionUrls
from task_server.testing import RedisProcess

pytestmark = pytest.mark.e2e


def envelope(task_id: str, body: object) -> str:
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps({"body": encoded, "headers": {"id": task_id, "task": "math.add"}, "properties": {}})


def test_an_id_is_found_in_headers_bodies_and_delivered_messages(
    private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = redis.Redis.from_url(private_redis.url)
    chain = [[1, 2], {}, {"chain": [{"options": {"task_id": "later-link"}}]}]
    store.lpush("math", envelope("first-link", chain))
    store.lpush("math\x06\x169", envelope("low-priority", [[], {}, {}]))
    store.hset("unacked", "tag-1", json.dumps([json.loads(envelope("delivered", [[], {}, {}])), "", "reports"]))
    settings = ClientSettings(urls=ConnectionUrls(private_redis.url, private_redis.url))
    publisher = DirectPublisher(private_redis.url, settings, 100, "task-client-test")
    try:
        for task_id in ("first-link", "later-link", "low-priority", "delivered"):
            assert publisher.find(task_id, ["math", "reports"]) is True, task_id
        assert publisher.find("typo-id", ["math", "reports"]) is False
        assert publisher.find("low-priority", ["reports"]) is False  # only the queues asked about
        monkeypatch.setattr(_direct, "_SEARCH_LIMIT", 0)
        assert publisher.find("typo-id", ["math"]) is None  # too long to read: cannot tell
    finally:
        publisher.close()
        store.close()
