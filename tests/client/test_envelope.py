"""The Redis envelope written from its fixed text (`EnvelopeBuilder.build`) is, character for
character, `json.dumps` of the envelope's fields: the wire stays what `send_task` would write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_client._direct import EnvelopeBuilder
from task_client._producer import Outgoing

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
