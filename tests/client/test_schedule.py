"""Per-call schedule options: checked before anything is published, fixed as absolute UTC times."""

from __future__ import annotations

import datetime as dt

import pytest

from task_client import InvalidOptions, TaskCancelled, TaskExpired, TaskFailed
from task_client._outcome import decode_outcome
from task_client._schedule import Schedule, check_schedule
from tests.policies import contracts


def test_countdown_and_expiry_become_absolute_utc_times() -> None:
    before = dt.datetime.now(dt.UTC)
    schedule = Schedule.resolve(2, None, 10, 3)
    assert schedule is not None and schedule.eta and schedule.expires
    assert dt.timedelta(seconds=2) <= schedule.eta - before < dt.timedelta(seconds=3)
    assert dt.timedelta(seconds=10) <= schedule.expires - before < dt.timedelta(seconds=11)
    assert 1 < schedule.due_in() <= 2 and schedule.priority == 3
    assert Schedule.resolve(None, None, None, None) is None
    berlin = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2030, 1, 1, 13, 0, tzinfo=berlin)
    resolved = Schedule.resolve(None, at, None, None)
    assert resolved is not None and resolved.eta == at and resolved.eta.tzinfo == dt.UTC


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"eta": dt.datetime(2030, 1, 1)}, InvalidOptions, "naive datetime"),
        ({"expires": dt.datetime(2030, 1, 1)}, InvalidOptions, "naive datetime"),
        ({"countdown": 1, "eta": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, InvalidOptions, "not both"),
        ({"countdown": -1}, InvalidOptions, "countdown"),
        ({"expires": 0}, InvalidOptions, "expires"),
        ({"priority": 10}, InvalidOptions, "priority"),
        ({"priority": True}, InvalidOptions, "priority"),
        ({"eta": "2030-01-01"}, InvalidOptions, "must be a datetime"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        check_schedule(**options)  # type: ignore[arg-type]


def revoked(reason: str) -> dict[str, object]:
    return {
        "status": "REVOKED",
        "result": {"exc_type": "TaskRevokedError", "exc_message": [reason], "exc_module": "celery.exceptions"},
    }


def test_revoked_records_become_cancelled_or_expired() -> None:
    with pytest.raises(TaskExpired):
        decode_outcome(contracts.stamp, "id-1", revoked("expired"))
    with pytest.raises(TaskCancelled):
        decode_outcome(contracts.stamp, "id-1", revoked("terminated"))
    with pytest.raises(TaskCancelled):
        decode_outcome(None, "id-1", {"status": "REVOKED", "result": None})


def test_a_declared_error_comes_back_as_its_type_and_as_task_failed() -> None:
    record = {
        "status": "FAILURE",
        "result": {"exc_type": "InsufficientFunds", "exc_message": ["holds 100"], "exc_module": "x"},
        "attempt": 1,
    }
    with pytest.raises(contracts.InsufficientFunds) as caught:
        decode_outcome(contracts.withdraw, "id-2", record)
    assert isinstance(caught.value, TaskFailed) and caught.value.remote_message == "holds 100"
    with pytest.raises(TaskFailed) as other:  # another contract does not declare it
        decode_outcome(contracts.stamp, "id-2", record)
    assert not isinstance(other.value, contracts.InsufficientFunds)
