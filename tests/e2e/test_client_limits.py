"""issue 19, untyped client errors: out-of-range values give a `TaskError`, never a bare
`ValueError`, `OverflowError`, `TypeError` or a `BrokerUnavailable` about a timestamp."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from typing import Any

import pytest

from task_client import InvalidArguments, InvalidOptions, TaskClient, TaskError

from ..brokers import Broker

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


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"countdown": 1e12}, "countdown=1000000000000.0 seconds from now is no date"),  # was a bare OverflowError
        ({"expires": math.inf}, "expires=inf seconds from now is no date"),
        ({"countdown": math.nan}, "countdown must be seconds, zero or more, got nan"),
        ({"countdown": "5"}, "countdown must be seconds"),
        ({"eta": dt.datetime(2030, 1, 1)}, "naive datetime"),  # these were a bare TypeError
        ({"eta": "2030-01-01"}, "eta must be a datetime, got str"),
        ({"countdown": 1, "eta": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, "not both"),
        ({"priority": "3"}, "priority must be an int from 0 to 9"),  # and these a bare ValueError
        ({"priority": 3.5}, "priority must be an int from 0 to 9"),
    ],
    ids=[
        "countdown-1e12",
        "expires-inf",
        "countdown-nan",
        "countdown-str",
        "eta-naive",
        "eta-str",
        "both",
        "priority-str",
        "priority-float",
    ],
)
def test_a_bad_schedule_option_is_invalid_options_and_nothing_is_published(
    broker: Broker, client: TaskClient, options: dict[str, Any], named: str
) -> None:
    queue = f"never-published-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidOptions, match=re.escape(named)) as caught:
        client.add.with_options(queue=queue, **options).submit(1, 2)
    assert isinstance(caught.value, TaskError)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)  # as before, for old callers
    assert broker.queue_length(queue) == 0
    assert client.add(1, 2) == 3  # the client is still usable
