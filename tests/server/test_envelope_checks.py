"""The Redis transport's check of a popped envelope, before kombu reads it (no Redis: the
end-to-end proofs are in tests/e2e/test_hostile_envelopes.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.utils.json import dumps

import task_server._batch_pop
from task_server._message_checks import MAX_NESTING, _text_within, nesting_exceeds
from task_server._transport import envelope_refusal

HEADERS = {"task": "math.add", "id": "7"}
CODECS = {"base64": object()}


def envelope(**changes: Any) -> dict[str, Any]:
    properties = {"body_encoding": "base64", "delivery_tag": "t", "delivery_info": {"exchange": "", "routing_key": "q"}}
    item: dict[str, Any] = {"body": "", "headers": HEADERS, "properties": properties}
    for key, value in changes.items():
        if key in properties:
            properties[key] = value
        else:
            item[key] = value
    return item


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"properties": None}, "the envelope has no properties object"),
        ({"delivery_tag": ["t"]}, "the envelope's delivery_tag is not a string"),
        ({"delivery_info": {"exchange": ""}}, "delivery_info is not an object with exchange and routing_key"),
        ({"body": 5}, "the envelope's body is not a string"),
        ({"headers": "zzz"}, "the envelope's headers are not an object"),
        ({"body_encoding": "rot13"}, "unknown body_encoding 'rot13' (known: base64, utf-8)"),
        ({"headers": {**HEADERS, "x": json.loads("[" * 200 + "]" * 200)}}, "the envelope is nested too deeply"),
    ],
)
def test_an_envelope_kombu_cannot_read_is_named(changes: dict[str, Any], problem: str) -> None:
    assert envelope_refusal(envelope(), CODECS) is None
    assert envelope_refusal(envelope(body_encoding="utf-8"), CODECS) is None
    assert problem in str(envelope_refusal(envelope(**changes), CODECS))


# JSON values of any shape, whose strings are often brackets: text that counts brackets must not
# decide differently from the walk over the parsed value.
BRACKETS = st.text(alphabet='[]{}"\\x\u00e9\u2028\x00', max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | BRACKETS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(BRACKETS, children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES, limit=st.integers(min_value=0, max_value=12))
def test_the_bracket_count_of_the_text_decides_as_the_walk(value: Any, limit: int) -> None:
    raw = json.dumps(value, ensure_ascii=False)
    for text in (json.dumps(value), dumps(value), raw.encode(), raw.encode("utf-16"), raw.encode("utf-8-sig")):
        assert nesting_exceeds(json.loads(text), limit, hint=text) == nesting_exceeds(value, limit)


def test_a_text_deeper_than_its_value_leaves_the_verdict_to_the_walk() -> None:
    # Parsing keeps the last of two equal keys: the text nests 201 deep, the value 2.
    text = '{"a": ' + "[" * 200 + "]" * 200 + ', "a": [1]}'
    for hint in (text, text.encode()):
        assert not nesting_exceeds(json.loads(text), MAX_NESTING, hint=hint)
    distinct = text.replace('"a": [1]', '"b": [1]')
    assert nesting_exceeds(json.loads(distinct), MAX_NESTING, hint=distinct)


def test_a_chunk_of_calls_is_counted_on_its_text() -> None:
    # 250 calls put 250 brackets more than the limit in the text, but nest 3 deep: no walk over them.
    body = json.dumps([[[i, i] for i in range(250)], {}, {"chain": None, "note": "[[[["}]).encode()
    assert _text_within(body, 3)
    assert not _text_within(body, 2)
    assert not nesting_exceeds(json.loads(body), MAX_NESTING, hint=body)


@settings(max_examples=200, deadline=None)
@given(headers=st.dictionaries(BRACKETS, JSON_VALUES, max_size=4), depth=st.integers(min_value=0, max_value=120))
def test_an_envelope_checked_with_its_text_is_refused_as_without(headers: dict[str, Any], depth: int) -> None:
    item = envelope(headers={**HEADERS, **headers, "deep": json.loads("[" * depth + "]" * depth) if depth else 0})
    text = dumps(item)
    assert envelope_refusal(json.loads(text), CODECS, text=text) == envelope_refusal(item, CODECS)


def test_a_popped_item_is_checked_with_its_text_while_it_is_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def deliver(channel: Any, payload: Any, queue: str) -> None:
        seen.extend([channel.popped_text(payload), channel.popped_text(dict(payload)), queue])

    monkeypatch.setattr(task_server._batch_pop, "deliver", deliver)
    channel = type("Channel", (task_server._batch_pop.BatchPopping,), {})()
    text = dumps(envelope())
    channel.deliver_text(text, "celery", recorded=False)
    # Only the very object parsed from the text is answered (an equal copy may have been changed).
    assert seen == [text, None, "celery"]
    assert channel.popped_text(json.loads(text)) is None  # nothing once delivered


@pytest.mark.parametrize(
    "item",
    [
        '{"body": "e30=", "headers": {"id": "1", "eta": null}, "properties": {"delivery_tag": "t"}}',
        '{"headers": {"when": {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}}}',
        # an escape kombu's hook sees through: the key is __type__ once parsed
        '{"headers": {"argsrepr": "(\'caf\\u00e9\',)", "k": {"\\u005f_type__": "date", "__value__": "2026-01-01"}}}',
    ],
)
def test_a_popped_item_is_parsed_as_kombu_parses_it(item: str) -> None:
    from kombu.utils.json import loads

    from task_server._batch_pop import envelope_of

    assert envelope_of(item) == loads(item)
