"""`task-server beat` against real Redis and worker processes: it fires on time, only one beat
fires at a time, and a dead leader is replaced within a bounded time."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from task_contracts import math
from task_contracts.wire import SHAPE_HEADER
from task_server.testing import BeatProcess, WorkerProcess, wait_until

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

SCHEDULES = "tests.e2e.beat_schedules:EVERY_SECOND"
LEASE = 2.0
LOCK_KEY_OPTION = "--lock-key"


@pytest.fixture
def lock_key() -> str:
    # A lease of this test's own: beats of other tests never compete with these.
    return f"test-beat-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def start_beat(redis_url: str, lock_key: str, queue: str, tmp_path: Path, lease: float = LEASE) -> BeatProcess:
    workdir = tmp_path / f"cwd-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    return BeatProcess(
        redis_url,
        SCHEDULES,
        lease=lease,
        extra_args=[LOCK_KEY_OPTION, lock_key],
        env={"BEAT_TEST_QUEUE": queue, "PYTHONPATH": str(REPO_ROOT)},
        cwd=str(workdir),
        logdir=str(tmp_path),
    ).start()


def fires_in(store: redis.Redis, queue: str, seconds: float) -> int:
    """Messages published on `queue` (consumed by nobody) during the next `seconds`."""
    before = int(store.llen(queue))
    time.sleep(seconds)  # the measured window itself, not a wait for a condition
    return int(store.llen(queue)) - before


def leader_pid(store: redis.Redis, lock_key: str) -> int | None:
    token = store.get(lock_key)
    return None if token is None else int(token.decode().split(":")[1])


def test_beat_fires_every_second_and_the_worker_runs_each_call(
    redis_url: str, worker: WorkerProcess, lock_key: str, tmp_path: Path
) -> None:
    def runs() -> int:
        return len(re.findall(r"math\.add\[[0-9a-f-]+\] succeeded in [0-9.e-]+s: 35579", worker.log()))

    already = runs()
    with start_beat(redis_url, lock_key, "math", tmp_path) as beat:
        wait_until(lambda: runs() >= already + 3, 30, "three scheduled runs of math.add by the worker")
        started = time.monotonic()
        first = runs()
        wait_until(lambda: runs() >= first + 4, 30, "four more scheduled runs")
        elapsed = time.monotonic() - started
        cwd = Path(beat.cwd or ".")
    # Four runs one second apart take about 4 s; a burst (or no schedule at all) would not.
    assert elapsed > 2.0, f"4 runs in {elapsed:.2f} s: not one per second"
    assert list(cwd.iterdir()) == [], "beat wrote a file into its working directory"


def test_fired_messages_carry_validated_arguments_and_the_contract_shape(
    redis_url: str, store: redis.Redis, lock_key: str, tmp_path: Path
) -> None:
    queue = f"beat-{uuid.uuid4().hex[:8]}"
    try:
        with start_beat(redis_url, lock_key, queue, tmp_path):
            wait_until(lambda: int(store.llen(queue)) >= 1, 20, "a fired message")
        envelope = json.loads(store.rpop(queue) or b"{}")
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert envelope["headers"]["task"] == "math.add"
        assert envelope["headers"][SHAPE_HEADER] == math.add.shape
        assert (args, kwargs) == ([31337, 4242], {})
    finally:
        store.delete(queue)


def test_two_beats_fire_as_one_and_a_dead_leader_is_replaced_in_bounded_time(
    redis_url: str, store: redis.Redis, lock_key: str, tmp_path: Path
) -> None:
    queue = f"beat-{uuid.uuid4().hex[:8]}"
    first = start_beat(redis_url, lock_key, queue, tmp_path)
    second = start_beat(redis_url, lock_key, queue, tmp_path)
    try:
        wait_until(lambda: int(store.llen(queue)) >= 1, 20, "the first fire")
        # One beat fires about once a second; two firing would give about twice as many.
        fired = fires_in(store, queue, 6.0)
        assert 3 <= fired <= 8, f"{fired} fires in 6 s from two beats on a 1 s schedule"
        assert first.leading() != second.leading(), (first.log()[-1500:], second.log()[-1500:])
        leader, standby = (first, second) if first.leading() else (second, first)
        assert leader_pid(store, lock_key) == leader.pid

        # SIGKILL: the leader cannot release its lease; it must expire.
        os.kill(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        count = int(store.llen(queue))
        wait_until(lambda: int(store.llen(queue)) > count, 20, "a fire after the leader died")
        takeover = time.monotonic() - killed_at
        # lease (2 s) + a standby's retry interval (lease / 3) + one schedule interval (1 s), and slack.
        assert takeover < LEASE * 4 / 3 + 1.0 + 3.0, f"the standby took {takeover:.1f} s to take over"
        assert standby.leading() and leader_pid(store, lock_key) == standby.pid
        fired = fires_in(store, queue, 4.0)
        assert 2 <= fired <= 6, f"{fired} fires in 4 s after the takeover"
    finally:
        first.stop()
        second.stop()
        store.delete(queue)


def test_a_stopped_leader_hands_over_at_once(redis_url: str, store: redis.Redis, lock_key: str, tmp_path: Path) -> None:
    queue = f"beat-{uuid.uuid4().hex[:8]}"
    lease = 8.0  # long, so that taking over a released lease is told apart from waiting for it to expire
    with (
        start_beat(redis_url, lock_key, queue, tmp_path, lease) as first,
        start_beat(redis_url, lock_key, queue, tmp_path, lease) as second,
    ):
        try:
            wait_until(lambda: first.leading() or second.leading(), 20, "a leader")
            leader, standby = (first, second) if first.leading() else (second, first)
            leader.stop()  # SIGTERM: releases the lease
            assert "released the lease" in leader.log()
            wait_until(standby.leading, lease - 2.0, "the standby to lead before the lease could have expired")
        finally:
            store.delete(queue)


def test_a_frozen_leader_that_wakes_up_after_losing_its_lease_does_not_fire(
    redis_url: str, store: redis.Redis, lock_key: str, tmp_path: Path
) -> None:
    queue = f"beat-{uuid.uuid4().hex[:8]}"
    first = start_beat(redis_url, lock_key, queue, tmp_path)
    second = start_beat(redis_url, lock_key, queue, tmp_path)
    try:
        wait_until(lambda: first.leading() or second.leading(), 20, "a leader")
        leader, standby = (first, second) if first.leading() else (second, first)
        leader.signal(signal.SIGSTOP)  # frozen: it can neither renew nor release its lease
        wait_until(standby.leading, 20, "the standby to take over the frozen leader's lease")
        leader.signal(signal.SIGCONT)
        wait_until(lambda: "lost the lease" in leader.log(), 10, "the woken leader to notice it lost the lease")
        fired = fires_in(store, queue, 4.0)
        assert 2 <= fired <= 6, f"{fired} fires in 4 s with a woken former leader"
        assert leader_pid(store, lock_key) == standby.pid
    finally:
        first.stop()
        second.stop()
        store.delete(queue)
