"""A lone sync call on a plain Redis broker writes its LPUSH and waits for its record; the broker's reply
is read when the call starts waiting if it has come by then, else once the record has come, or at
`CONFIRM_AFTER` (`Runtime._wait_published`), never waited for before the record. Nothing the reply can
say is lost on the way: a refusal or a lost connection still fails the call at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from task_client import BrokerUnavailable, InvalidArguments, TaskClient, TaskTimeout
from task_client._direct import PendingPush
from task_client._producer import Confirmation
from task_client._runtime import CONFIRM_AFTER
from task_server.testing import RedisProcess, WorkerProcess

pytestmark = pytest.mark.e2e


def in_use(pool: Any) -> int:
    """Connections of the client's publishing pool (redis-py's blocking pool) not given back."""
    free = sum(1 for connection in pool.pool.queue if connection is not None)
    return len(pool._connections) - free


def reply_reads(client: TaskClient, calls: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """For each of `calls` calls, how many calls waited on the reply channel when its publish reply was read."""
    watcher = client._runtime.watcher
    order: list[str] = []
    confirm = PendingPush.confirm

    def noted(pending: PendingPush) -> None:
        order.append(f"reply read, {len(watcher.replies._waiters)} waiting")
        confirm(pending)

    monkeypatch.setattr(PendingPush, "confirm", noted)
    for _ in range(calls):
        assert client.add(4, 7) == 11
    pool = client._runtime.producer._direct._redis.connection_pool  # type: ignore[union-attr]
    assert in_use(pool) == 0  # every connection given back
    return order


def test_a_publish_reply_that_has_come_is_read_while_the_worker_runs_the_call(
    private_redis: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read before the call waits for its record (the call itself still waits there: 1 waiting),
    not after the record came, when the caller is on its way back. The check is made to find the
    reply there, as it usually is by then."""
    with WorkerProcess(private_redis.url, logdir=str(tmp_path)) as worker, TaskClient(private_redis.url) as client:
        worker.start()
        assert client.add(1, 1) == 2
        arrived = Confirmation.arrived

        def once_there(confirmation: Confirmation) -> bool:
            assert confirmation.pending._connection.can_read(timeout=30)
            return arrived(confirmation)

        monkeypatch.setattr(Confirmation, "arrived", once_there)
        assert reply_reads(client, 5, monkeypatch) == ["reply read, 1 waiting"] * 5


def test_a_publish_reply_not_there_yet_is_read_only_after_the_record_came(
    private_redis: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone caller then sleeps once, until its record comes, instead of also waking for the reply."""
    with WorkerProcess(private_redis.url, logdir=str(tmp_path)) as worker, TaskClient(private_redis.url) as client:
        worker.start()
        assert client.add(1, 1) == 2
        monkeypatch.setattr(Confirmation, "arrived", lambda confirmation: False)
        assert reply_reads(client, 5, monkeypatch) == ["reply read, 0 waiting"] * 5


def test_a_call_nobody_serves_reads_its_reply_at_confirm_after_and_times_out(private_redis: RedisProcess) -> None:
    with TaskClient(private_redis.url) as client:
        with pytest.raises(TaskTimeout):
            client.add.with_options(timeout=CONFIRM_AFTER * 4)(4, 7)
        assert redis.Redis.from_url(private_redis.url).llen("math") == 1  # published once
        pool = client._runtime.producer._direct._redis.connection_pool  # type: ignore[union-attr]
        assert in_use(pool) == 0


def test_a_publish_the_broker_refuses_fails_the_call_at_once_not_at_its_bound(private_redis: RedisProcess) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    everything_but_lpush = ["+@all", "-lpush"]
    admin.acl_setuser(
        "nolpush", enabled=True, passwords=["+secret"], keys=["*"], channels=["*"], commands=everything_but_lpush
    )
    url = private_redis.url.replace("redis://", "redis://nolpush:secret@")
    with TaskClient(url) as client:
        with pytest.raises(BrokerUnavailable, match="^broker .* is unavailable: .*(NOPERM|permission)") as caught:
            client.add.with_options(timeout=60)(4, 7)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        pool = client._runtime.producer._direct._redis.connection_pool  # type: ignore[union-attr]
        assert in_use(pool) == 0
    admin.close()


def test_a_call_whose_publish_failed_keeps_only_the_digest_of_its_arguments(private_redis: RedisProcess) -> None:
    """The record check keeps a call's arguments only until their digest is computed after the
    publish (`RecordCheck.settle`); a publish that failed must not leave them held (up to 100,000 calls)."""
    huge = 10**5000  # JSON cannot write it: refused while the envelope is built
    with TaskClient(private_redis.url) as client:
        with pytest.raises(InvalidArguments):
            client.add(huge, 1)
        with pytest.raises(InvalidArguments):
            client.add.submit(huge, 1)
        kept = client._runtime.watcher.check._mine
        assert len(kept) == 2 and all(type(value) is str for value in kept.values()), kept
