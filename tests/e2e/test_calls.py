"""The client calling real workers over a real Redis."""

from __future__ import annotations

import time

import pytest

from task_client import (
    ContractMismatch,
    InvalidArguments,
    TaskClient,
    TaskFailed,
    TaskHandle,
    TaskTimeout,
    UnknownTask,
)
from task_contracts import contract, math

pytestmark = [pytest.mark.e2e, pytest.mark.every_broker]

#: Seconds within which a worker's NotRegistered answer must arrive: loose for a loaded machine, and
#: far below the call's own bound, so a timeout can never pass for it.
UNKNOWN_AT_ONCE = 5.0


def test_tutorial_tasks_return_validated_results(client: TaskClient) -> None:
    assert client.add(4, 7) == 11
    assert client.mul(4, 7) == 28
    assert client.xsum([1, 2, 3]) == 6
    assert client.add(x=4, y=7) == 11
    assert client.div(7, 2) == 3.5


def test_submit_returns_a_handle_with_id_status_and_result(client: TaskClient) -> None:
    handle = client.add.submit(4, 7)
    assert isinstance(handle, TaskHandle)
    assert len(handle.id) == 36
    assert handle.name == client.add.name == "math.add"
    assert handle.result(timeout=10) == 11
    assert handle.status == "SUCCESS"
    assert handle.ready()


def test_many_handles_resolve_to_their_own_results(client: TaskClient) -> None:
    handles = [client.add.submit(i, i) for i in range(200)]
    assert [handle.result(timeout=30) for handle in handles] == [2 * i for i in range(200)]


def test_invalid_arguments_are_refused_before_publishing(client: TaskClient) -> None:
    with pytest.raises(InvalidArguments) as caught:
        client.add("a", 7)  # type: ignore[arg-type]
    assert caught.value.contract == "math.add"
    assert caught.value.task_id is None  # nothing was published
    assert "x: Input should be a valid integer" in str(caught.value)


def test_remote_exception_becomes_task_failed_with_its_type(client: TaskClient) -> None:
    with pytest.raises(TaskFailed) as caught:
        client.div(1, 0)
    assert caught.value.remote_type == "ZeroDivisionError"
    assert "division by zero" in caught.value.remote_message
    assert caught.value.task_id and caught.value.contract == "math.div"


def test_timeout_on_a_queue_no_worker_serves_and_the_handle_can_wait_again(client: TaskClient) -> None:
    nobody = client.add.with_options(queue="nobody-listens", timeout=0.5)
    handle = nobody.submit(1, 2)
    with pytest.raises(TaskTimeout) as caught:
        handle.result()
    assert caught.value.timeout == 0.5 and caught.value.task_id == handle.id
    assert handle.status == "PENDING"
    with pytest.raises(TaskTimeout):
        client.add.handle(handle.id).result(timeout=0.2)


def test_a_name_no_worker_serves_is_unknown_quickly(client: TaskClient) -> None:
    @contract(name="math.nonexistent", queue="math", timeout=30)
    def nonexistent(x: int) -> int: ...

    started = time.monotonic()
    with pytest.raises(UnknownTask, match="math.nonexistent"):
        client.task(nonexistent).with_options(timeout=20)(1)
    assert time.monotonic() - started < UNKNOWN_AT_ONCE  # the worker's answer, far inside the 20 s bound


def test_a_newer_contract_runs_on_an_older_worker_unless_the_call_uses_what_it_lacks(client: TaskClient) -> None:
    @contract(name="math.add", queue="math", timeout=10, idempotent=True)
    def add(x: int, y: int, z: int = 0) -> int: ...

    assert add.fingerprint != math.add.fingerprint
    assert client.task(add)(1, 2) == 3  # only what the worker knows: runs
    with pytest.raises(ContractMismatch, match=r"math\.add: parameter 'z' is not known to this worker"):
        client.task(add)(1, 2, z=5)  # never silently dropped


def test_a_changed_type_is_refused_naming_the_change_only_when_the_value_breaks(client: TaskClient) -> None:
    @contract(name="math.add", queue="math", timeout=10, idempotent=True)
    def add(x: int, y: str) -> int: ...

    assert client.task(add)(1, "2") == 3  # the worker's int accepts "2"
    with pytest.raises(ContractMismatch, match=r"math\.add: y changed from str to int"):
        client.task(add)(1, "two")


def test_a_required_parameter_the_caller_lacks_is_refused_naming_it(client: TaskClient) -> None:
    @contract(name="math.add", queue="math", timeout=10, idempotent=True)
    def add(x: int) -> int: ...

    with pytest.raises(ContractMismatch, match=r"parameter 'y' is required by this worker"):
        client.task(add)(1)


def test_a_result_the_client_cannot_read_is_a_mismatch_naming_it(client: TaskClient) -> None:
    @contract(name="math.add", queue="math", timeout=10, idempotent=True)
    def add(x: int, y: int) -> list[int]: ...

    with pytest.raises(ContractMismatch, match=r"math\.add: the worker's result does not fit .*list"):
        client.task(add)(1, 2)


def test_task_by_name_knows_the_catalog(client: TaskClient) -> None:
    assert client.task_by_name("math.mul")(6, 7) == 42
    with pytest.raises(UnknownTask, match="math.add, math.mul"):
        client.task_by_name("math.nope")
