"""The unacked record's writer (`task_server._unacked`) on a real Redis: each entry is held until the next
write on its connection, goes in that write, and a write that fails hands each held message back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
import redis.sentinel

from task_client import TaskClient
from task_server._admission import _ADMIT_SHA as ADMIT_SHA
from task_server._unacked import UnackedLedger, flush_held
from task_server.testing import RedisProcess, WorkerProcess, free_port

from ..redis_monitor import evals_seen

pytestmark = pytest.mark.e2e

ENTRY = '[{"body": "e30="}, "", "math"]'


def test_an_entry_is_held_until_the_next_write_and_goes_in_it_first(private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    ledger = UnackedLedger(client.connection_pool, "unacked_index", "unacked")
    ledger.remember("tag-1", ENTRY, on_unsent=lambda: pytest.fail("written"))
    assert client.hlen("unacked") == 0  # held
    # The next command on the same connection carries it, and Redis runs it first.
    assert ledger.send_with_held("HLEN", "unacked")() == 1
    assert client.hget("unacked", "tag-1") == ENTRY.encode()
    assert client.zscore("unacked_index", "tag-1") is not None
    ledger.close()
    client.close()


def test_flush_held_writes_the_entries_of_every_ledger(private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    ledgers = [UnackedLedger(client.connection_pool, f"index-{n}", f"hash-{n}") for n in range(2)]
    for number, ledger in enumerate(ledgers):
        ledger.remember(f"tag-{number}", ENTRY, on_unsent=lambda: pytest.fail("written"))
    flush_held()
    for ledger in ledgers:
        ledger.settle()
    assert [client.hlen(f"hash-{n}") for n in range(2)] == [1, 1]
    for ledger in ledgers:
        ledger.close()
    client.close()


def test_a_write_that_fails_hands_each_held_message_back_and_raises() -> None:
    closed = redis.ConnectionPool(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    ledger = UnackedLedger(closed, "unacked_index", "unacked")
    unsent: list[str] = []
    for tag in ("tag-1", "tag-2"):
        ledger.remember(tag, ENTRY, on_unsent=lambda tag=tag: unsent.append(tag))  # type: ignore[misc]
    with pytest.raises(redis.exceptions.ConnectionError):
        ledger.flush()
    assert unsent == ["tag-1", "tag-2"]
    ledger.flush()  # nothing is held any more
    assert unsent == ["tag-1", "tag-2"]


def test_a_removal_on_the_hub_thread_waits_for_the_next_write_one_from_another_thread_does_not(
    private_redis: RedisProcess,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    ledger = UnackedLedger(client.connection_pool, "unacked_index", "unacked")
    for tag in ("hub", "thread", "last"):
        ledger.remember(tag, ENTRY, on_unsent=lambda: pytest.fail("written"))  # on this thread: the hub's
    ledger.settle()
    assert client.hlen("unacked") == 3
    ledger.forget("hub")  # acknowledged on the hub's thread: held
    assert client.hexists("unacked", "hub")
    remover = threading.Thread(target=ledger.forget, args=("thread",))
    remover.start()
    remover.join(timeout=10)
    ledger.settle()
    # Another thread's removal is written at once, and the held one goes in the same write.
    assert not client.hexists("unacked", "hub") and not client.hexists("unacked", "thread")
    ledger.forget("last")
    ledger.flush()  # a flush before a hand-off writes held entries only: there are none
    assert client.hexists("unacked", "last")
    ledger.flush_all()  # before the hub waits for the next message
    ledger.settle()
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
    ledger.close()
    client.close()


def test_a_call_on_the_event_loop_writes_its_unacked_entry_and_admission_on_one_connection(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    """Broker and backend on one Redis: the entry and the admission script come from one client, one after the other."""
    with WorkerProcess(private_redis.url, logdir=str(tmp_path)) as worker, TaskClient(private_redis.url) as client:
        worker.start()
        assert client.add(1, 1) == 2  # connections made
        with evals_seen(private_redis.url) as seen:
            for _ in range(3):
                assert client.add(4, 7) == 11
    entries = [index for index, (_, text) in enumerate(seen) if "HSET" in text]
    assert len(entries) == 3, seen
    for index in entries:
        admission = seen[index + 1]
        assert admission[1].startswith(f"EVALSHA {ADMIT_SHA} "), seen  # the admission script follows the entry...
        assert admission[0] == seen[index][0]  # ...on the same connection


def test_sentinel_pools_of_other_masters_are_not_taken_for_the_same_server() -> None:
    # A Sentinel pool has no host or port of its own: before, any two (another master's name,
    # other sentinels) compared equal, and a call's unacked entry on the broker was "removed" by
    # the store script on the backend, its ack writing nothing (b296eb0): redelivered later.
    # (No server is reached: redis-py's pools connect on first use.)
    def pool(port: int, master: str) -> redis.ConnectionPool:
        client = redis.sentinel.Sentinel([("127.0.0.1", port)]).master_for(master)
        return client.connection_pool  # type: ignore[no-any-return]

    ledger = UnackedLedger(pool(26379, "broker"), "unacked_index", "unacked")
    try:
        assert ledger.shares_server(pool(26379, "broker"))
        assert not ledger.shares_server(pool(26379, "results"))
        assert not ledger.shares_server(pool(36379, "broker"))
        assert not ledger.shares_server(redis.ConnectionPool(host="127.0.0.1", port=26379))
    finally:
        ledger.close()
