"""The Redis envelope written from its fixed text (`EnvelopeBuilder.build`) is, character for
character, `json.dumps` of the envelope's fields: the wire stays what `send_task` would write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_client._direct import EnvelopeBuilder, _dumps
from task_client._producer import Outgoing
from task_contracts.wire import CANCEL_HASH_HEADER, SHAPE_HEADER
from tests.forking import reported_by_forked_child

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _delivery_tag(envelope: str) -> str:
    tag: str = json.loads(envelope)["properties"]["delivery_tag"]
    return tag


def _check(builder: EnvelopeBuilder, message: Outgoing) -> None:
    envelope = builder.build(message)
    assert envelope == json.dumps(builder.fields(message, _delivery_tag(envelope)))


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(),
    queue=st.text(),
    task_id=st.text(),
    args=st.lists(json_values, max_size=4),
    kwargs=st.dictionaries(st.text(), json_values, max_size=4),
    headers=st.dictionaries(st.text(), json_values, max_size=4),
    time_limit=st.none() | st.integers(0, 10**6) | st.floats(0, 1e6),
)
def test_the_built_envelope_is_json_dumps_of_its_fields(
    name: str,
    queue: str,
    task_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    headers: dict[str, Any],
    time_limit: float | None,
) -> None:
    message = Outgoing(name, args, kwargs, queue, task_id, headers, time_limit)
    _check(EnvelopeBuilder("task-client-\u00e9\n"), message)


# Every header the envelope has of its own (`parts`), so that one added there is also known to `build`.
STANDARD_HEADERS = sorted(EnvelopeBuilder("task-client-x").parts(Outgoing("math.add", [], {}, "math", "id", {}))[1])


@pytest.mark.parametrize("header", STANDARD_HEADERS)
def test_a_message_header_replacing_a_standard_one_takes_its_place(header: str) -> None:
    message = Outgoing("math.add", [4, 7], {}, "math", "a-task-id", {header: "given"})
    envelope = EnvelopeBuilder("task-client-x").build(message)
    assert json.loads(envelope)["headers"][header] == "given"
    _check(EnvelopeBuilder("task-client-x"), message)


def test_an_argument_json_cannot_write_raises_before_anything_is_built() -> None:
    huge = 10**5000  # past Python's int-to-text digit limit
    with pytest.raises(ValueError):
        EnvelopeBuilder("task-client-x").build(Outgoing("math.add", [huge], {}, "math", "id", {}))


def test_header_values_of_any_mapping_type_are_written() -> None:
    from types import MappingProxyType

    message = Outgoing("math.add", (4, 7), MappingProxyType({}), "math", "id", MappingProxyType({"when": "now"}), None)
    _check(EnvelopeBuilder("task-client-x"), message)
    assert json.loads(EnvelopeBuilder("r").build(message))["headers"]["when"] == "now"


def test_a_calls_own_headers_are_written_as_json_dumps_writes_them() -> None:
    shape = {"version": 1, "parameters": [["x", "int", "f0765dbf"], ["y", "int", "f0765dbf"]]}
    for headers in ({SHAPE_HEADER: shape, CANCEL_HASH_HEADER: "ab" * 32}, {CANCEL_HASH_HEADER: "\u00e9"}, {}):
        _check(EnvelopeBuilder("task-client-x"), Outgoing("math.add", [4, 7], {}, "math", "id", headers))


@settings(max_examples=300, deadline=None)
@given(value=json_values | st.floats() | st.integers(min_value=10**4400, max_value=10**4401) | st.just(object()))
def test_dumps_is_json_dumps(value: Any) -> None:
    try:
        expected: Any = json.dumps(value)
    except (TypeError, ValueError) as error:
        expected = type(error)
    try:
        got: Any = _dumps(value)
    except (TypeError, ValueError) as error:
        got = type(error)
    assert got == expected


def test_a_circular_value_is_refused_as_json_dumps_refuses_it() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        _dumps([loop])


def test_a_delivery_tag_made_ahead_goes_to_one_envelope() -> None:
    builder = EnvelopeBuilder("task-client-x")
    message = Outgoing("math.add", [4, 7], {}, "math", "id", {})
    builder.make_spare()
    builder.make_spare()  # one is enough for a sequential caller
    spare = builder._delivery_tags.waiting()[0]
    first, second = (_delivery_tag(builder.build(message)) for _ in range(2))
    assert first == spare and second != spare


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_use_a_delivery_tag_its_parent_made_ahead() -> None:
    builder = EnvelopeBuilder("task-client-x")
    message = Outgoing("math.add", [4, 7], {}, "math", "id", {})
    builder.make_spare()
    spare = builder._delivery_tags.waiting()[0]
    child = reported_by_forked_child(lambda: _delivery_tag(builder.build(message)))  # its next envelope's tag
    assert child and child != spare
    assert _delivery_tag(builder.build(message)) == spare


@settings(max_examples=300, deadline=None)
@given(shape=json_values, cancel=json_values, order=st.booleans())
def test_a_calls_own_headers_of_any_value_are_written_as_json_dumps_writes_them(
    shape: Any, cancel: Any, order: bool
) -> None:
    builder = EnvelopeBuilder("task-client-x")
    headers = {SHAPE_HEADER: shape, CANCEL_HASH_HEADER: cancel}
    if order:
        headers = {CANCEL_HASH_HEADER: cancel, SHAPE_HEADER: shape}
    for _ in range(2):  # the second time with the shape's text kept from the first
        _check(builder, Outgoing("math.add", [4, 7], {}, "math", "id", headers))


def test_each_contracts_shape_is_written_as_its_own() -> None:
    builder = EnvelopeBuilder("task-client-x")
    first = {"version": 1, "parameters": [["x", "int", "f0765dbf"]]}
    second = {"version": 2, "parameters": []}
    for shape in (first, first, second, first, dict(first), None):
        _check(builder, Outgoing("math.add", [4, 7], {}, "math", "id", {SHAPE_HEADER: shape, CANCEL_HASH_HEADER: "h"}))
        written = json.loads(builder.build(Outgoing("math.add", [], {}, "q", "id", {SHAPE_HEADER: shape})))
        assert written["headers"][SHAPE_HEADER] == shape
