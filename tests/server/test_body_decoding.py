"""The worker's Redis channel decodes a message body as kombu's channel decodes it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu.transport import redis as kombu_redis

from task_server._transport import GuardedConnection


@pytest.fixture(scope="module")
def channel(redis_url: str) -> Iterator[Any]:
    with GuardedConnection(redis_url) as connection:
        yield connection.default_channel


def _outcome(decode: Any, body: Any, encoding: Any) -> Any:
    try:
        return decode(body, encoding)
    except Exception as error:
        return type(error), str(error)


BODIES = st.text() | st.binary().map(lambda raw: base64.b64encode(raw).decode()) | st.binary()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(BODIES, st.sampled_from(["base64", "utf-8", None, "UTF-8"]))
def test_a_body_is_decoded_as_kombu_decodes_it(channel: Any, body: Any, encoding: Any) -> None:
    kombus = _outcome(lambda b, e: kombu_redis.Channel.decode_body(channel, b, e), body, encoding)
    assert _outcome(channel.decode_body, body, encoding) == kombus
