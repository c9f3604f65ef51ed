"""Run policies declared with the contract, against real workers: retries (attempt visible, last
failure raised), declared errors raised by type, Celery's per-worker rate limit, and the
fleet-wide concurrency limit held across two worker processes."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from task_client import TaskClient, TaskFailed
from task_contracts.wire import CONCURRENCY_KEY_PREFIX
from task_server.testing import wait_until
from tests.policies import contracts
from tests.policies.fixtures import Markers, StartWorker, markers, policy_client, start_worker

from .raw_messages import envelope

__all__ = ["markers", "policy_client", "start_worker"]

pytestmark = pytest.mark.e2e


def marker() -> str:
    return uuid.uuid4().hex[:12]


def test_a_retried_call_shows_retry_and_its_attempt_then_succeeds(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    start_worker(concurrency=1)
    name = marker()
    handle = policy_client.task(contracts.flaky).submit(name, 1)  # fails once, backoff 0.5 s
    seen: set[tuple[str, int]] = set()

    def retrying() -> bool:
        seen.add((handle.status, handle.attempt))
        return ("RETRY", 2) in seen or ("SUCCESS", 2) in seen

    wait_until(retrying, 20, "the retry of policies.flaky", interval=0.01)
    assert handle.result() == 2
    assert ("RETRY", 2) in seen, seen
    assert handle.attempt == 2
    assert markers.starts(name) == 2


def test_a_call_served_from_threads_is_retried_too(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    # Its admission is asked as the call is handed to a thread and kept in Celery's request dict:
    # it must not travel with the retry's message (Celery copies the request's custom headers).
    start_worker(concurrency=1)
    name = marker()
    assert policy_client.task(contracts.flaky_light).with_options(timeout=30)(name, 2) == 3
    assert markers.starts(name) == 3


def test_the_last_failure_is_raised_by_its_declared_type_when_attempts_run_out(
    policy_client: TaskClient, start_worker: StartWorker, markers: Markers
) -> None:
    start_worker(concurrency=1)
    name = marker()
    handle = policy_client.task(contracts.flaky).submit(name, 10)
    with pytest.raises(contracts.Flaky) as caught:
        handle.result()
    assert isinstance(caught.value, TaskFailed)
    assert caught.value.remote_type == "Flaky"
    assert "run 3 of" in caught.value.remote_message and "(attempt 3)" in str(caught.value)
    assert markers.starts(name) == 3  # attempts=3: never a fourth run
    assert handle.attempt == 3


def test_a_declared_error_is_raised_by_type(policy_client: TaskClient, start_worker: StartWorker) -> None:
    start_worker(concurrency=1)
    withdraw = policy_client.task(contracts.withdraw)
    assert withdraw(30) == 70
    with pytest.raises(contracts.InsufficientFunds) as caught:
        withdraw(500)
    assert isinstance(caught.value, TaskFailed)
    assert caught.value.task_id and "holds 100, 500 asked" in str(caught.value)
    outcomes = withdraw.map([(1,), (900,)], return_exceptions=True)
    assert outcomes[0] == 99 and isinstance(outcomes[1], contracts.InsufficientFunds)


def test_the_rate_limit_spaces_starts_on_a_worker(policy_client: TaskClient, start_worker: StartWorker) -> None:
    start_worker(concurrency=2)
    starts = sorted(policy_client.task(contracts.tick).map([()] * 5, timeout=30))  # 2/s
    # Celery's token bucket lets the first start through at once, then one every 0.5 s.
    assert starts[-1] - starts[0] >= 1.5, starts


def overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans running at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_the_concurrency_limit_holds_across_two_worker_processes(
    policy_client: TaskClient, start_worker: StartWorker
) -> None:
    # Two workers of two processes each: four slots, and the contract allows two at once.
    # Each reserves one message per process ahead, so both take part from the first calls on.
    start_worker("--prefetch-multiplier", "1", concurrency=2)
    start_worker("--prefetch-multiplier", "1", concurrency=2)
    results = policy_client.task(contracts.span).map([(0.6,)] * 12, timeout=60, chunk_size=1)
    spans = [(start, end) for _, start, end in results]
    workers = {where.split(":")[1] for where, _, _ in results}
    assert overlap(spans) == 2, spans  # never above the limit, and the limit was reached
    assert len(workers) == 2, workers  # both workers served calls


def test_a_call_refused_for_its_arguments_leaves_no_slot_of_the_concurrency_limit_taken(
    redis_url: str, policy_client: TaskClient, start_worker: StartWorker
) -> None:
    # A call served on a thread has its admission (and its slot) asked for as it is handed over;
    # one whose arguments are then refused never runs, and must give its slot back.
    start_worker()
    store = redis.Redis.from_url(redis_url)
    task_id = f"invalid-{marker()}"
    body = json.dumps([["not seconds"], {}, {}]).encode()
    store.lpush(
        contracts.QUEUE,
        envelope(contracts.single.name, body, task_id=task_id, queue=contracts.QUEUE),
    )
    wait_until(lambda: store.exists(f"celery-task-meta-{task_id}") == 1, 30, "the refused call's record")
    assert store.zcard(f"{CONCURRENCY_KEY_PREFIX}{contracts.single.name}") == 0
    assert policy_client.task(contracts.single)(0.0) == 0.0
    store.close()
