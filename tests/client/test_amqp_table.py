"""On RabbitMQ a call's headers are written as their AMQP field table by `header_table`, not by
py-amqp: the bytes on the wire must be py-amqp's, byte for byte, for every header value."""

from __future__ import annotations

import datetime
import decimal
from types import SimpleNamespace
from typing import Any

import pytest
from amqp import Message
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from amqp.spec import Basic
from hypothesis import given, settings
from hypothesis import strategies as st

from task_client._amqp import AmqpPublisher, _TableMessage, _Unusual, header_table
from task_client._direct import EnvelopeBuilder
from task_client._producer import Outgoing
from task_contracts.wire import CANCEL_HASH_HEADER, SHAPE_HEADER

keys = st.text(max_size=8) | st.binary(max_size=8)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.sampled_from([2147483647, -2147483647, 2147483648, -2147483648])
    | st.floats()
    | st.text()
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def _py_amqp(headers: dict[Any, Any]) -> bytes:
    return bytes(dumps("F", [headers])[4:])  # py-amqp's table, without its length


@settings(max_examples=500, deadline=None)
@given(headers=st.dictionaries(keys, values, max_size=6))
def test_the_table_is_py_amqps(headers: dict[Any, Any]) -> None:
    assert header_table(headers) == _py_amqp(headers)


def test_a_calls_headers_are_written_as_py_amqp_writes_them() -> None:
    message = Outgoing("math.add", [4, 7], {"z": "\u00e9\ud800"}, "math", "an-id", {"contract_shape": "s", "x": 1}, 30)
    _, headers = EnvelopeBuilder("task-client-\u00e9").parts(message)
    assert header_table(headers) == _py_amqp(headers)


@pytest.mark.parametrize(
    "value", [decimal.Decimal("1.5"), datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC), object(), [object()]]
)
def test_a_value_it_does_not_write_is_left_to_py_amqp(value: Any) -> None:
    with pytest.raises(_Unusual):
        header_table({"a": value})


@pytest.mark.parametrize("name", ["n" * 256, 5])
def test_a_name_it_does_not_write_is_left_to_py_amqp(name: Any) -> None:
    with pytest.raises(_Unusual):
        header_table({name: 1})


def _frames(message: Message) -> bytes:
    written: list[bytes] = []
    transport = SimpleNamespace(write=lambda data: written.append(bytes(data)))
    write = frame_writer(SimpleNamespace(frame_max=131072, bytes_sent=0), transport)
    write(1, 1, Basic.Publish, "", message)
    return b"".join(written)


def test_the_published_frames_are_those_of_py_amqps_message() -> None:
    _, headers = EnvelopeBuilder("task-client-x").parts(Outgoing("math.add", [4, 7], {}, "math", "an-id", {}))
    properties = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "delivery_mode": 2,
        "correlation_id": "an-id",
        "reply_to": "task-client-x",
    }
    ours = _TableMessage(b"[[4, 7], {}]", application_headers=header_table(headers), **properties)
    theirs = Message(b"[[4, 7], {}]", application_headers=headers, **properties)
    assert _frames(ours) == _frames(theirs)
    empty = _TableMessage(b"", application_headers=header_table({}), **properties)
    assert _frames(empty) == _frames(Message(b"", application_headers={}, **properties))


def test_each_contracts_shape_is_written_as_its_own() -> None:
    first = {"version": 1, "parameters": [["x", "int", "f0765dbf"]]}
    second = {"version": 2, "parameters": []}
    for shape in (first, first, second, first, dict(first), None, "text"):
        headers = {"id": "an-id", SHAPE_HEADER: shape, "cancel_hash": "h"}
        assert header_table(headers) == _py_amqp(headers)


@settings(max_examples=200, deadline=None)
@given(shape=values, other=st.dictionaries(keys, values, max_size=3))
def test_a_shape_written_before_is_written_the_same(shape: Any, other: dict[Any, Any]) -> None:
    for headers in ({SHAPE_HEADER: shape, **other}, {SHAPE_HEADER: shape}, {**other, SHAPE_HEADER: shape}):
        assert header_table(headers) == _py_amqp(headers)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(),
    task_id=st.text(),
    args=st.lists(json_values, max_size=4),
    kwargs=st.dictionaries(st.text(), json_values, max_size=4),
    shape=json_values,
    cancel=json_values,
    own=st.sampled_from([(), (SHAPE_HEADER,), (CANCEL_HASH_HEADER,), (SHAPE_HEADER, CANCEL_HASH_HEADER)]),
    time_limit=st.none() | st.integers(0, 10**12) | st.floats(0, 1e6),
)
def test_a_calls_table_from_its_fixed_bytes_is_py_amqps_of_its_headers(
    name: str,
    task_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    shape: Any,
    cancel: Any,
    own: tuple[str, ...],
    time_limit: float | None,
) -> None:
    envelopes = EnvelopeBuilder("task-client-\u00e9")
    headers = {key: {SHAPE_HEADER: shape, CANCEL_HASH_HEADER: cancel}[key] for key in own}
    message = Outgoing(name, args, kwargs, "math", task_id, headers, time_limit)
    body, expected = envelopes.parts(message)
    try:
        written = AmqpPublisher(None, envelopes, 1.0, 10)._standard(message)
    except _Unusual:  # left to py-amqp, as its dict would be (a name longer than 255 bytes)
        with pytest.raises(_Unusual):
            header_table(expected)
        return
    assert written == (body, _py_amqp(expected))


def test_a_message_with_other_headers_is_written_from_its_dict() -> None:
    publisher = AmqpPublisher(None, EnvelopeBuilder("r"), 1.0, 10)
    for headers in ({"lang": "go"}, {"x": 1}, {SHAPE_HEADER: "s", "x": 1}):
        with pytest.raises(_Unusual):
            publisher._standard(Outgoing("math.add", [4, 7], {}, "math", "an-id", headers))
