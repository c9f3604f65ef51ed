"""Fault 1: the broker or result backend down, refusing or frozen. A bounded, typed error; never a hang.

Every broker here is a real redis-server of the test's own, or a RabbitMQ node apart from the
session's, stopped or frozen (SIGSTOP: the kernel still accepts connections and nothing answers)
for real; the publishing tests run on both. Durations are behaviour bounds from the
issue (2 s refused, 5 s frozen), with a margin for a loaded machine; not speed benchmarks.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import amqp
import pytest
import redis

from task_client import BrokerUnavailable, TaskClient, TaskTimeout
from task_contracts import redact_url
from task_server.testing import RabbitMQProcess, RedisProcess, free_port, wait_until

from ..brokers import Broker

# One test process for the module: `rabbitmq_to_break` is asked for at run time (RabbitMQ only), so
# tests/parallel.py cannot see that these tests share it; apart, each process would boot a node.
pytestmark = [pytest.mark.e2e, pytest.mark.every_broker, pytest.mark.xdist_group("broker_faults")]

PASSWORD = "pw-fault-1-never-shown"


@dataclass
class ProtectedBroker:
    """A broker of the test's own behind a password, free to stop and freeze, with its result backend."""

    url: str
    result_backend: str
    process: RedisProcess | RabbitMQProcess

    def stop(self) -> None:
        self.process.stop()

    def freeze(self) -> None:
        self.process.freeze()

    def thaw(self) -> None:
        self.process.thaw()


@pytest.fixture(scope="module")
def rabbitmq_to_break(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQProcess]:
    """A RabbitMQ node apart from the session's: these tests freeze and stop it."""
    with RabbitMQProcess(workdir=str(tmp_path_factory.mktemp("rabbitmq-to-break"))) as node:
        node.start()
        node.ctl("add_user", "fault", PASSWORD)
        node.ctl("set_permissions", "-p", "/", "fault", ".*", ".*", ".*")
        yield node


@pytest.fixture
def protected_broker(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ProtectedBroker]:
    (tmp_path / "broker").mkdir()
    if broker.kind == "rabbitmq":
        node: RabbitMQProcess = request.getfixturevalue("rabbitmq_to_break")
        if not node.alive():  # stopped by the test before
            node.start()
        url = node.url.replace("guest:guest@", f"fault:{PASSWORD}@")
        with RedisProcess(workdir=str(tmp_path / "broker")) as backend:
            yield ProtectedBroker(url, backend.start().url, node)
            if node.alive():
                node.thaw()
        return
    with RedisProcess(workdir=str(tmp_path / "broker"), extra_args=["--requirepass", PASSWORD]) as process:
        process.start()
        yield ProtectedBroker(with_password(process.url), with_password(process.url), process)


def with_password(url: str) -> str:
    return url.replace("redis://", f"redis://:{PASSWORD}@")


def closed_broker_url(broker: Broker) -> str:
    port = free_port()
    if broker.kind == "rabbitmq":
        return f"amqp://fault:{PASSWORD}@127.0.0.1:{port}//"
    return with_password(f"redis://127.0.0.1:{port}/0")


def timed(call: Callable[[], Any]) -> tuple[BaseException, float]:
    """The exception `call` raises and how long it took to raise it."""
    started = time.monotonic()
    try:
        call()
    except BaseException as error:
        return error, time.monotonic() - started
    raise AssertionError(f"{call} raised nothing")


def assert_clean_broker_error(error: BaseException, url: str) -> None:
    """A `BrokerUnavailable` naming the URL without its password, with no library traceback."""
    assert isinstance(error, BrokerUnavailable), repr(error)
    assert error.url == redact_url(url)
    assert str(error).startswith(f"broker {redact_url(url)} is unavailable: ")
    assert error.__cause__ is None and error.__suppress_context__
    shown = "".join(traceback.format_exception(error))
    assert "kombu" not in shown and "redis/" not in shown and "celery/" not in shown
    assert PASSWORD not in shown and PASSWORD not in repr(error)


def test_publish_to_a_closed_port_fails_within_2_s(broker: Broker) -> None:
    url = closed_broker_url(broker)
    with TaskClient(url, with_password(f"redis://127.0.0.1:{free_port()}/0")) as client:
        error, took = timed(lambda: client.add.submit(1, 2))
    assert_clean_broker_error(error, url)
    assert "Connection refused" in str(error)
    assert took < 2.5


def test_publish_to_a_frozen_broker_fails_within_5_s(protected_broker: ProtectedBroker) -> None:
    url = protected_broker.url
    started = time.monotonic()
    client = TaskClient(url, protected_broker.result_backend)
    client.add.submit(1, 2)
    protected_broker.freeze()
    try:
        error, took = timed(lambda: client.add.submit(1, 2))
        assert_clean_broker_error(error, url)
        assert "no reply within 2 s" in str(error) and "may still run if the broker recovers" in str(error)
        assert took < 6.0
        closing = time.monotonic()
        client.close()
        assert time.monotonic() - closing < 6.0  # close() never waits on a frozen broker for long
    finally:
        protected_broker.thaw()
    assert time.monotonic() - started < 15.0


def test_the_frozen_bound_follows_the_client_settings(protected_broker: ProtectedBroker) -> None:
    url = protected_broker.url
    with TaskClient(url, protected_broker.result_backend, socket_timeout=0.5) as client:
        client.add.submit(1, 2)
        protected_broker.freeze()
        try:
            error, took = timed(lambda: client.add.submit(1, 2))
        finally:
            protected_broker.thaw()
    assert_clean_broker_error(error, url)
    assert "no reply within 0.5 s" in str(error)
    # The message names the bound that applied; the default socket_timeout (2 s) would also take longer.
    assert took < 2.0


def test_a_client_built_and_closed_against_a_frozen_broker_never_hangs(protected_broker: ProtectedBroker) -> None:
    url = protected_broker.url
    protected_broker.freeze()
    try:
        started = time.monotonic()
        client = TaskClient(url, protected_broker.result_backend)  # construction does no network I/O
        # Any I/O with a frozen broker waits for socket_timeout (2 s) at least.
        assert time.monotonic() - started < 2.0
        error, took = timed(lambda: client.add.submit(1, 2))
        assert_clean_broker_error(error, url)
        assert took < 6.0
        if protected_broker.result_backend == url:  # Redis: the frozen broker holds the results too
            error, took = timed(lambda: client.add.handle("no-such-id").status)
            assert isinstance(error, BrokerUnavailable) and "result backend" in str(error)
            assert took < 4.0  # connect_timeout + socket_timeout
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 6.0
    finally:
        protected_broker.thaw()


def test_many_threads_publishing_to_a_frozen_broker_each_fail_within_the_bound(
    protected_broker: ProtectedBroker,
) -> None:
    # Calls with a countdown take Celery's publishing path, whose producer pool has 10 slots here. With
    # the broker frozen each slot is held for a socket timeout (2 s). Without a bound on the wait
    # for a slot, the failures came in rounds of 10: the last of 80 threads failed after 16 s.
    # Now a thread waits at most pool_timeout (3 s) for a slot, then a connection and a publish.
    url = protected_broker.url
    threads = 80
    with TaskClient(url, protected_broker.result_backend, max_connections=10) as client:
        delayed = client.add.with_options(countdown=600)
        delayed.submit(1, 2)  # connected, pool built
        protected_broker.freeze()
        try:
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                outcomes = list(pool.map(lambda n: timed(lambda: delayed.submit(n, n)), range(threads)))
        finally:
            protected_broker.thaw()
    for error, _ in outcomes:
        assert_clean_broker_error(error, url)
    slowest = max(took for _, took in outcomes)
    assert slowest < 8.0, f"the slowest of {threads} publishes failed after {slowest:.1f} s"
    assert any("producers of the client's Celery app stayed busy for 3 s" in str(error) for error, _ in outcomes)


def test_a_batch_to_a_frozen_broker_fails_within_5_s(protected_broker: ProtectedBroker) -> None:
    # A batch on RabbitMQ reads its publisher confirms in rounds on a connection of its own: that
    # wait is bounded too.
    url = protected_broker.url
    with TaskClient(url, protected_broker.result_backend) as client:
        client.add.submit_many([(1, 2), (3, 4)])  # the batch connection now exists
        protected_broker.freeze()
        try:
            error, took = timed(lambda: client.add.submit_many([(n, n) for n in range(50)]))
        finally:
            protected_broker.thaw()
    assert isinstance(error, BrokerUnavailable), repr(error)
    assert error.url == redact_url(url) and "no reply within 2 s" in str(error)
    shown = "".join(traceback.format_exception(error))
    assert "kombu" not in shown and "amqp/" not in shown and PASSWORD not in shown
    assert took < 6.0


def vhost_refusing_publishes(rabbitmq: RabbitMQProcess, name: str, *, max_length: int) -> tuple[str, str]:
    """A fresh virtual host whose `math` queue refuses publishes past `max_length` messages, and its URL."""
    vhost, url = rabbitmq.fresh_vhost(name)
    policy = json.dumps({"max-length": max_length, "overflow": "reject-publish"})
    rabbitmq.ctl("set_policy", "-p", vhost, "--apply-to", "queues", "full", "^math$", policy)
    return vhost, url


def test_messages_rabbitmq_refuses_are_a_typed_error_not_a_silent_loss(
    rabbitmq: RabbitMQProcess, private_redis: RedisProcess
) -> None:
    # A queue over its length limit that rejects publishes (a policy an operator may set) nacks them.
    # A quorum queue applies the limit once it is passed, so the first publishes may still be taken.
    _, url = vhost_refusing_publishes(rabbitmq, "full", max_length=1)
    with TaskClient(url, private_redis.url) as client:  # no worker here: the queue fills up
        refused: list[BrokerUnavailable] = []
        for n in range(5):
            try:
                client.add.submit(n, n)
            except BrokerUnavailable as error:
                refused.append(error)
                break
        batch_error, _ = timed(lambda: client.add.submit_many([(1, 1), (2, 2)]))
    assert refused, "RabbitMQ took 5 messages into a queue limited to 1"
    for error in (refused[0], batch_error):
        assert isinstance(error, BrokerUnavailable), repr(error)
        assert "RabbitMQ refused the message" in str(error)
        assert error.__cause__ is None and error.__suppress_context__


def test_threads_publishing_at_once_each_learn_their_own_fate(
    rabbitmq: RabbitMQProcess, private_redis: RedisProcess
) -> None:
    # The client's threads share one connection and its confirm rounds (`task_client._amqp`): a
    # basic.nack must fail the call it belongs to, and only that one. Half of 32 threads publish at
    # once into a full queue that refuses publishes, half into a queue with room.
    vhost, url = vhost_refusing_publishes(rabbitmq, "full-at-once", max_length=2)
    threads = 32
    start = threading.Barrier(threads)

    with TaskClient(url, private_redis.url) as client:  # no worker here: the queues keep what they take
        open_queue = client.add.with_options(queue="open")
        open_queue.submit(0, 0)  # declared
        # A quorum queue applies its limit once it is passed: fill it until it refuses.
        for n in range(50):
            try:
                client.add.submit(n, n)
            except BrokerUnavailable:
                break
        else:
            pytest.fail("RabbitMQ took 50 messages into a queue limited to 2")

        def submit(n: int) -> str | BaseException:
            start.wait(30)
            try:
                return (open_queue if n % 2 else client.add).submit(n, n).id
            except BrokerUnavailable as error:
                return error

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(submit, range(threads)))
    refused, published = outcomes[0::2], outcomes[1::2]
    for error in refused:
        assert isinstance(error, BrokerUnavailable) and "RabbitMQ refused the message" in str(error), repr(error)
    assert all(isinstance(task_id, str) for task_id in published), published
    connection = amqp.Connection(f"127.0.0.1:{rabbitmq.port}", userid="guest", password="guest", virtual_host=vhost)
    connection.connect()
    try:
        channel = connection.channel()
        queued = set()
        while message := channel.basic_get("open", no_ack=True):
            queued.add(message.properties["correlation_id"])
    finally:
        connection.close()
        rabbitmq.delete_vhost_later(vhost)
    assert set(published) <= queued and len(queued) == len(published) + 1  # and the first call's


# Last of the tests on a broker of their own: the RabbitMQ node they share then need not restart.
def test_publish_after_the_broker_stopped_fails_within_2_s(protected_broker: ProtectedBroker) -> None:
    url = protected_broker.url
    with TaskClient(url, protected_broker.result_backend) as client:
        client.add.submit(1, 2)  # a pooled connection now exists and goes stale
        protected_broker.stop()
        error, took = timed(lambda: client.add.submit(1, 2))
    assert_clean_broker_error(error, url)
    assert "Connection refused" in str(error)
    assert took < 2.5


def subscribers(redis_url: str, task_id: str) -> int:
    with redis.Redis.from_url(redis_url, socket_timeout=2) as connection:
        counts = connection.pubsub_numsub(f"celery-task-meta-{task_id}")
    return int(counts[0][1])


@pytest.mark.parametrize("fault", ["frozen", "stopped"])
def test_a_call_waiting_on_a_lost_result_backend_gets_a_bounded_typed_error(
    fault: str, private_redis: RedisProcess, tmp_path: Path
) -> None:
    backend_dir = tmp_path / "backend"
    backend_dir.mkdir()
    with (
        RedisProcess(workdir=str(backend_dir), extra_args=["--requirepass", PASSWORD]) as backend,
        TaskClient(private_redis.url, with_password(backend.start().url)) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        handle = client.add.submit(1, 2)  # no worker: the call stays pending
        started = time.monotonic()
        waiting = pool.submit(handle.result, 2.0)
        # Fault injected while the call waits, once the client's subscription is live on the backend.
        wait_until(lambda: subscribers(with_password(backend.url), handle.id) == 1, 10, "the result subscription")
        if fault == "frozen":
            backend.freeze()
        else:
            backend.stop()
        try:
            error = waiting.exception(timeout=15)
        finally:
            if fault == "frozen":
                backend.thaw()
        took = time.monotonic() - started
    # A frozen backend answers nothing: the wait bound (2 s) passes, then one bounded read
    # (at most connect_timeout + socket_timeout = 3 s) tells it from a pending task.
    assert isinstance(error, BrokerUnavailable), repr(error)
    assert error.url == redact_url(with_password(backend.url)) and error.task_id == handle.id
    assert str(error).startswith(f"result backend {redact_url(with_password(backend.url))} is unavailable")
    assert PASSWORD not in str(error)
    assert took < 2.0 + 3.0 + 1.5


def test_a_pending_call_on_a_healthy_backend_is_a_timeout_not_unavailable(private_redis: RedisProcess) -> None:
    with TaskClient(private_redis.url) as client:
        handle = client.add.submit(1, 2)
        error, took = timed(lambda: handle.result(timeout=0.5))
    assert isinstance(error, TaskTimeout) and error.timeout == 0.5
    assert 0.5 <= took < 3.0
