"""The worker's event loop runs only the calls of contracts whose author declared `on_event_loop=True`.

A real default worker serves `diagnostics.nap` (declared) and `diagnostics.whereabouts` (light, not
declared); each returns the name of the thread it ran on. Being quick, however often, never moves
a contract onto the loop; one slow run there sends a declared contract to the threads for good.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from task_client import TaskClient
from task_server.testing import RabbitMQProcess, RedisProcess, WorkerProcess

from ..catalog import diagnostics, serving
from .amqp_worker import worker_on_own_vhost

pytestmark = pytest.mark.e2e

LOOP = "MainThread"
BACK_TO_THREADS = "although declared on_event_loop; its calls run on threads from now on"


def test_only_contracts_declared_for_the_loop_run_there(private_redis: RedisProcess, tmp_path: Path) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving()) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            whereabouts, nap = client.task(diagnostics.whereabouts), client.task(diagnostics.nap)
            assert LOOP not in {whereabouts() for _ in range(60)}  # quick 60 times, still on threads
            assert {nap(0.0) for _ in range(5)} == {LOOP}
            assert client.add(4, 7) == 11


def test_one_slow_run_on_the_loop_sends_a_declared_contract_to_threads_for_good(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), **serving()) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            nap = client.task(diagnostics.nap)
            assert nap(0.0) == LOOP
            assert nap(0.05) == LOOP  # slower than 10 ms, on the loop
            assert BACK_TO_THREADS in worker.log()
            assert LOOP not in {nap(0.0) for _ in range(20)}
            assert worker.log().count(BACK_TO_THREADS) == 1


def test_no_inline_keeps_declared_contracts_on_threads(private_redis: RedisProcess, tmp_path: Path) -> None:
    with WorkerProcess(private_redis.url, logdir=str(tmp_path), extra_args=["--no-inline"], **serving()) as worker:
        worker.start()
        with TaskClient(private_redis.url) as client:
            assert LOOP not in {client.task(diagnostics.nap)(0.0) for _ in range(20)}
        assert "event loop" not in worker.log()


def test_on_rabbitmq_concurrent_calls_of_a_declared_contract_go_to_threads(
    rabbitmq: RabbitMQProcess, tmp_path: Path
) -> None:
    """A call on the loop would hold the deliveries behind it through its Redis round trips."""
    with (
        worker_on_own_vhost(rabbitmq, str(tmp_path), "inline") as served,
        TaskClient(served.url, served.results_url) as client,
    ):
        nap = client.task(diagnostics.nap)
        assert {nap(0.0) for _ in range(5)} == {LOOP}  # one caller: on the loop
        with ThreadPoolExecutor(16) as callers:
            ran_on = list(callers.map(lambda _: nap(0.0), range(160)))
        assert {name for name in ran_on if name != LOOP}, "16 callers at once, every call on the loop"
        deadline = time.monotonic() + 10
        while nap(0.0) != LOOP:  # alone again: back on the loop once the busy spell is over
            assert time.monotonic() < deadline, "a lone caller's calls stayed off the loop"
