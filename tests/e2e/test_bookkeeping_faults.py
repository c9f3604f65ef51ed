"""issue 19 item 6: garbage in kombu's crash-recovery bookkeeping (the unacked hash, its index, the
sweep lock) never stops recovery: the entry or key is removed and reported (log line and metric),
the worker keeps serving, and a genuinely lost message still comes back and runs.

A lost message is made as a worker killed after delivery leaves it: popped from its queue and
written to the unacked hash and index with a delivery time in the past.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from task_client import TaskClient
from task_server.testing import RedisProcess, WorkerProcess, free_port, wait_until

from ..catalog import serving

pytestmark = pytest.mark.e2e

VISIBILITY_TIMEOUT = 3


def lose(raw: redis.Redis, queue: str, tag: str) -> None:
    """Move the message waiting on `queue` to the unacked record, as a worker lost after delivery leaves it."""
    item = raw.rpop(queue)
    assert item is not None
    payload = json.loads(item)
    delivery = payload["properties"]["delivery_info"]
    with raw.pipeline() as pipe:
        pipe.hset("unacked", tag, json.dumps([payload, delivery["exchange"], delivery["routing_key"]]))
        pipe.zadd("unacked_index", {tag: time.time() - 1000})
        pipe.execute()


def malformed_count(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "task_server_bookkeeping_malformed_total"
    )


@pytest.fixture
def raw(private_redis: RedisProcess) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(private_redis.url, socket_timeout=5) as connection:
        yield connection


GARBAGE = {
    "a one-element list": {"hash": {"g7": "[1]"}, "index": {"g7": 0}},
    "not JSON": {"hash": {"g8": b"\xff\xfe{"}, "index": {"g8": 1}},
    "a hash entry with no index entry": {"hash": {"g9": "[1]"}, "index": {}},
    "a triple of the wrong types": {"hash": {"g10": "[1, 2, 3]"}, "index": {"g10": 2}},
}


@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_a_malformed_unacked_entry_is_reported_and_a_lost_message_still_comes_back(
    garbage: str, private_redis: RedisProcess, raw: redis.Redis, tmp_path: Path
) -> None:
    entries = GARBAGE[garbage]
    with TaskClient(private_redis.url) as client:
        handle = client.add.submit(4, 7)  # no worker yet
        lose(raw, "math", "lost-1")
        with raw.pipeline() as pipe:
            for tag, value in entries["hash"].items():
                pipe.hset("unacked", tag, value)
            if entries["index"]:
                pipe.zadd("unacked_index", entries["index"])
            pipe.execute()
        port = free_port()
        args = [
            "--visibility-timeout",
            str(VISIBILITY_TIMEOUT),
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
        ]
        with WorkerProcess(
            private_redis.url, concurrency=1, extra_args=args, logdir=str(tmp_path), **serving()
        ) as worker:
            worker.start()
            assert handle.result(timeout=60) == 11  # restored by the sweep despite the garbage
            assert client.add.with_options(timeout=10)(1, 2) == 3
            if entries["index"]:
                wait_until(lambda: malformed_count(port) >= 1, 30, "the malformed entry to be reported")
                assert "removed malformed crash-recovery bookkeeping, unacked entry" in worker.log()
                assert raw.hget("unacked", next(iter(entries["hash"]))) is None
            assert "Error in timer" not in worker.log()
            assert worker.alive()


def test_a_sweep_lock_that_never_expires_is_removed_and_the_lost_message_comes_back(
    private_redis: RedisProcess, raw: redis.Redis, tmp_path: Path
) -> None:
    with TaskClient(private_redis.url) as client:
        handle = client.add.submit(4, 7)  # no worker yet
        lose(raw, "math", "lost-1")
        raw.set("unacked_mutex", "held by nobody")  # kombu's lock always expires; this one never would
        args = ["--visibility-timeout", str(VISIBILITY_TIMEOUT)]
        with WorkerProcess(
            private_redis.url, concurrency=1, extra_args=args, logdir=str(tmp_path), **serving()
        ) as worker:
            worker.start()
            assert handle.result(timeout=60) == 11
            assert "key 'unacked_mutex' (a sweep lock without expiry" in worker.log()
            assert worker.alive()


@pytest.mark.parametrize("key", ["unacked", "unacked_index"])
def test_a_bookkeeping_key_of_the_wrong_type_is_removed(
    key: str, private_redis: RedisProcess, raw: redis.Redis, tmp_path: Path
) -> None:
    raw.set(key, "garbage")  # a string where kombu keeps a hash or a sorted set
    args = ["--visibility-timeout", str(VISIBILITY_TIMEOUT)]
    with (
        TaskClient(private_redis.url) as client,
        WorkerProcess(private_redis.url, concurrency=1, extra_args=args, logdir=str(tmp_path), **serving()) as worker,
    ):
        worker.start()
        wait_until(lambda: f"key {key!r} (a string, not a" in worker.log(), 30, "the malformed key to be reported")
        assert raw.type(key) != b"string"
        assert client.add.with_options(timeout=10)(1, 2) == 3
        # Sweeps go on without an error (one every visibility_timeout / 5 s, at least 1 s).
        reports = worker.log().count("removed malformed")
        swept = sweeps_run(raw)
        wait_until(lambda: sweeps_run(raw) >= swept + 2, 30, "two more sweeps")
        assert "Error in timer" not in worker.log() and worker.log().count("removed malformed") == reports
        assert worker.alive()


def sweeps_run(raw: redis.Redis) -> int:
    """Sweeps of the unacked index so far: each reads it with one ZRANGE."""
    stats = raw.info("commandstats").get("cmdstat_zrange", {})
    return int(stats.get("calls", 0))
