"""issue 19, untyped client errors: out-of-range values give a `TaskError`, never a bare
`ValueError`, `OverflowError` or a `BrokerUnavailable` about a timestamp."""

from __future__ import annotations

import math

import pytest

from task_client import InvalidArguments, TaskClient, TaskError

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("timeout", [math.inf, 1e12])
def test_an_unbounded_or_huge_wait_is_a_long_bound(client: TaskClient, timeout: float) -> None:
    handle = client.add.submit(4, 7)
    assert handle.result(timeout=timeout) == 11  # was BrokerUnavailable: timestamp out of range


def test_an_int_too_long_for_json_is_invalid_arguments(client: TaskClient) -> None:
    with pytest.raises(InvalidArguments, match="cannot be written as JSON"):
        client.xsum.submit([10**5000] * 3)  # was a bare ValueError
    with pytest.raises(InvalidArguments, match="cannot be written as JSON"):
        client.xsum.map([([10**5000],)], timeout=5)


def test_a_countdown_past_year_9999_is_invalid_arguments(client: TaskClient) -> None:
    with pytest.raises(InvalidArguments, match="too far in the future") as caught:
        client.add.with_options(countdown=1e12).submit(1, 2)  # was a bare OverflowError
    assert isinstance(caught.value, TaskError)
