"""The worker's own Redis connections that Redis closes while they stand idle (its `timeout`
setting; a proxy's idle limit does the same) are replaced before the next write.

The worker writes early admissions, stores and unacked entries on connections kept out of redis-py's
pool (`task_server._pipelined`), which checks a connection at each checkout. Before, the first
write after an idle spell went to the closed socket: the early admission of a call served by a
thread was decided 'unrecorded' (a call not idempotent is then refused), the store failed and was
retried with a traceback in the log, and on a Redis broker the unacked entry's failed write
restarted the consumer ("Connection to broker lost")."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from task_client import TaskClient
from task_server.testing import RabbitMQProcess, RedisProcess, WorkerProcess, wait_until

from ..catalog import serving

pytestmark = pytest.mark.e2e

SYMPTOMS = ("start not counted", "Failed operation _store_result", "Connection to broker lost")


def other_clients(url: str) -> list[dict[str, str]]:
    with redis.Redis.from_url(url, decode_responses=True) as watcher:
        mine = watcher.client_id()
        return [entry for entry in watcher.client_list() if int(entry["id"]) != mine]


def idle_ones_closed(url: str, before: set[str]) -> bool:
    """Whether Redis has closed connections of `before`, and every connection idle past its timeout
    (pub/sub and blocked ones are never closed so)."""
    now = other_clients(url)
    still_idle = [
        entry
        for entry in now
        if int(entry["idle"]) >= 2 and entry.get("sub") == entry.get("psub") == "0" and "b" not in entry["flags"]
    ]
    return len(before - {entry["id"] for entry in now}) >= 2 and not still_idle


@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_connections_redis_closed_while_idle_are_replaced_before_the_next_call(
    tmp_path: Path, request: pytest.FixtureRequest, broker_kind: str
) -> None:
    with RedisProcess(workdir=str(tmp_path), extra_args=["--timeout", "1"]) as backend:
        backend.start()
        url = backend.url
        if broker_kind == "rabbitmq":
            node: RabbitMQProcess = request.getfixturevalue("rabbitmq")
            _, url = node.fresh_vhost("idle")
        with (
            WorkerProcess(url, concurrency=1, logdir=str(tmp_path), result_backend=backend.url, **serving()) as worker,
            TaskClient(url, backend.url) as client,
        ):
            worker.start()
            for round_number in range(2):
                assert client.mul(2, round_number) == 2 * round_number  # served by a thread: asked early
                before = {entry["id"] for entry in other_clients(backend.url)}
                # Idle until Redis has closed the connections idle over its timeout (1 s), the worker's too.
                wait_until(lambda before=before: idle_ones_closed(backend.url, before), 15, "idle connections closed")
                seen = len(worker.log())
                assert [client.mul(3, n) for n in range(3)] == [0, 3, 6]
                after = worker.log()[seen:]
                assert [symptom for symptom in SYMPTOMS if symptom in after] == [], after[-3000:]
            assert worker.alive()
