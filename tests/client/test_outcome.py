"""Result records become values or typed errors (no Redis needed)."""

from __future__ import annotations

import pytest

from task_client import (
    ContractMismatch,
    InvalidArguments,
    OutcomeUnknown,
    TaskClient,
    TaskError,
    TaskFailed,
    UnknownTask,
)
from task_client._outcome import decode_outcome
from task_contracts import math

TASK_ID = "00000000-0000-0000-0000-000000000001"


def failure(exc_type: str, message: str) -> dict[str, object]:
    return {
        "status": "FAILURE",
        "task_id": TASK_ID,
        "traceback": "Traceback ...",
        "result": {"exc_type": exc_type, "exc_message": [message], "exc_module": "builtins"},
    }


def test_success_is_validated_against_the_result_type() -> None:
    assert decode_outcome(math.add, TASK_ID, {"status": "SUCCESS", "result": 11}) == 11
    with pytest.raises(ContractMismatch, match="math.add"):
        decode_outcome(math.add, TASK_ID, {"status": "SUCCESS", "result": "eleven"})


def test_failures_map_to_typed_errors() -> None:
    with pytest.raises(UnknownTask):
        decode_outcome(math.add, TASK_ID, failure("NotRegistered", "'math.add'"))
    with pytest.raises(ContractMismatch, match="differs"):
        decode_outcome(math.add, TASK_ID, failure("ContractMismatch", "differs"))
    with pytest.raises(TaskFailed) as caught:
        decode_outcome(math.add, TASK_ID, failure("ValueError", "bad"))
    assert (caught.value.remote_type, caught.value.remote_message) == ("ValueError", "bad")
    assert caught.value.remote_traceback == "Traceback ..."
    assert caught.value.task_id == TASK_ID


def test_invalid_arguments_raise_before_any_connection_is_made() -> None:
    # Port 9 is closed: reaching the broker would raise BrokerUnavailable instead.
    with TaskClient("redis://127.0.0.1:9/0") as client, pytest.raises(InvalidArguments) as caught:
        client.add(1, "x")  # type: ignore[arg-type]
    assert caught.value.problems == (
        "y: Input should be a valid integer, unable to parse string as an integer (got 'x')",
    )


def test_an_interrupted_or_unstored_task_is_outcome_unknown_not_failed() -> None:
    for exc_type in ("OutcomeUnknown", "WorkerLostError"):
        with pytest.raises(OutcomeUnknown) as caught:
            decode_outcome(math.add, TASK_ID, failure(exc_type, "worker lost"))
        assert isinstance(caught.value, TaskError) and not isinstance(caught.value, TaskFailed)
        assert caught.value.remote_message == "worker lost" and caught.value.task_id == TASK_ID
    with pytest.raises(TaskFailed) as capped:
        decode_outcome(math.add, TASK_ID, failure("DeliveryLimitExceeded", "started 3 times"))
    assert capped.value.remote_type == "DeliveryLimitExceeded"
