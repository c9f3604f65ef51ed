"""The checks a message passes before Celery's worker code reads it (no Redis: the end-to-end
proofs are tests/e2e/test_protocol_v1.py, test_hostile_messages.py and test_fuzz_messages.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_server._message_checks import (
    MAX_NESTING,
    body_refusal,
    converted_refusal,
    headers_refusal,
    json_value,
    nesting_exceeds,
    properties_refusal,
    v2_refusal,
)

JSON = {"application/json"}
HEADERS = {"task": "math.add", "id": "7"}


def test_the_headers_our_client_and_celery_send_pass() -> None:
    headers = {
        **HEADERS,
        "lang": "py",
        "shadow": None,
        "eta": "2026-01-01T00:00:00+00:00",
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [10, None],
        "root_id": "7",
        "parent_id": None,
        "argsrepr": "(1, 2)",
        "kwargsrepr": "{}",
        "origin": "gen1@host",
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        "x-tenant": ["anything", "unknown headers are not read"],
    }
    assert headers_refusal(headers) is None


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"retries": "many"}, "header 'retries' must be a non-negative integer, not 'many'"),
        ({"retries": -1}, "header 'retries' must be a non-negative integer"),
        ({"timelimit": "x"}, "header 'timelimit' must be [hard, soft] seconds"),
        ({"timelimit": [float("nan"), None]}, "header 'timelimit' must be [hard, soft] seconds"),
        ({"eta": 12345}, "header 'eta' must be an ISO 8601 date-time string or null, not 12345"),
        ({"eta": "tomorrow"}, "header 'eta' is not an ISO 8601 date-time ('tomorrow'"),
        ({"expires": "2026-13-45"}, "header 'expires' is not an ISO 8601 date-time"),
        ({"id": 5}, "header 'id' must be a non-empty string of UTF-8 text, not 5"),
        ({"ignore_result": "yes"}, "header 'ignore_result' must be true, false or null"),
    ],
)
def test_a_header_celery_would_choke_on_is_named(headers: dict[str, Any], problem: str) -> None:
    assert problem in str(headers_refusal({**HEADERS, **headers}))


def test_a_message_without_a_task_id_is_refused() -> None:
    assert headers_refusal({"task": "math.add"}) == "message has no task id"


@pytest.mark.parametrize(
    ("embed", "problem"),
    [
        ({"callbacks": "junk"}, "embed field 'callbacks' must be a list of task signatures or null, not 'junk'"),
        ({"errbacks": [1]}, "embed field 'errbacks' must be a list of task signatures"),
        ({"chain": [{"args": []}]}, "embed field 'chain' must be a list of task signatures"),
        ({"chord": {"task": "x", "kwargs": []}}, "embed field 'chord' must be a task signature or null"),
    ],
)
def test_an_embed_celery_would_choke_on_is_named(embed: dict[str, Any], problem: str) -> None:
    assert problem in str(v2_refusal([[1, 2], {}, embed], HEADERS))


def test_celery_canvas_signatures_pass() -> None:
    link = {"task": "math.mul", "args": [10], "kwargs": {}, "options": {}, "subtask_type": None, "immutable": False}
    assert (
        v2_refusal([[1, 2], {}, {"callbacks": None, "errbacks": None, "chain": [link], "chord": None}], HEADERS) is None
    )


def test_nesting_beyond_the_limit_is_refused_without_recursion() -> None:
    too_deep_for_json = b"[[" + b"[" * 5000 + b"]" * 5000 + b"], {}, {}]"  # json.loads itself fails near 1,000
    too_deep = b"[[" + b"[" * 500 + b"]" * 500 + b"], {}, {}]"
    for body in (too_deep_for_json, too_deep):
        problem, _ = body_refusal("application/json", body, 1 << 20, JSON)
        assert problem == f"message body is nested too deeply (more than {MAX_NESTING} levels)"
    shallow_enough = "[" * MAX_NESTING + "]" * MAX_NESTING
    assert not nesting_exceeds(json.loads(shallow_enough), MAX_NESTING)
    assert nesting_exceeds(json.loads("[" + shallow_enough + "]"), MAX_NESTING)
    assert nesting_exceeds({"a": [{"b": json.loads(shallow_enough)}]}, MAX_NESTING)


def v1_message(headers: Any = None) -> Any:
    return SimpleNamespace(headers=headers or {}, properties={})


def v1_body(**fields: Any) -> dict[str, Any]:
    return {"id": "7", "task": "math.add", "args": [4, 7], "kwargs": {}, "retries": 0, "eta": None, **fields}


def test_a_v1_body_is_converted_as_celery_converts_it_then_checked() -> None:
    assert converted_refusal(v1_message(), v1_body()) is None
    assert converted_refusal(v1_message(), v1_body(taskset="group-1", utc=True, callbacks=None)) is None
    assert "Task keyword arguments must be a mapping" in str(converted_refusal(v1_message(), v1_body(kwargs=[1])))
    assert "args must be a list" in str(converted_refusal(v1_message(), v1_body(args="ab")))
    assert "header 'retries' must be" in str(converted_refusal(v1_message(), v1_body(retries="many")))
    assert "header 'group' must be" in str(converted_refusal(v1_message(), v1_body(taskset=[1])))
    assert "embed field 'callbacks'" in str(converted_refusal(v1_message(), v1_body(callbacks="junk")))
    assert "neither a protocol-v2" in str(converted_refusal(v1_message(), [1, 2]))


def test_a_hybrid_message_takes_its_headers_over_its_body() -> None:
    hybrid = {"args": [4, 7], "kwargs": {}, "retries": "many"}
    assert converted_refusal(v1_message({**HEADERS, "retries": 0}), hybrid) is None


def test_properties_celery_reads_are_checked() -> None:
    assert properties_refusal({"correlation_id": "7", "reply_to": None, "priority": 0, "delivery_info": {}}) is None
    assert "property 'delivery_info' must be an object" in str(properties_refusal({"delivery_info": []}))
    assert "property 'priority' must be" in str(properties_refusal({"priority": "high"}))
    assert properties_refusal([]) == "message properties are not an object"


def _kombu_message(body: bytes) -> Any:
    from kombu.message import Message

    return Message(
        body=body,
        content_type="application/json",
        content_encoding="utf-8",
        headers=dict(HEADERS),
        properties={"delivery_info": {}},
        accept={"application/json"},
    )


def test_a_checked_body_is_decoded_once_when_kombu_decodes_it_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    import kombu.message

    from task_server._intake import message_refusal

    message = _kombu_message(b'[[4, 7], {}, {"callbacks": null}]')
    assert message_refusal(message, None, 1_000_000, JSON) is None

    def decoded_again(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("kombu decoded the checked body again")

    monkeypatch.setattr(kombu.message, "loads", decoded_again)
    assert message.payload == [[4, 7], {}, {"callbacks": None}]


@pytest.mark.parametrize(
    "body",
    [
        b'[[{"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}], {}, {}]',  # kombu decodes a datetime
        b'[["\\u005f_type__"], {}, {}]',  # an escape could spell the marker
        '[["caf\u00e9"], {}, {}]'.encode(),  # not ASCII
    ],
)
def test_a_body_kombu_may_decode_otherwise_is_left_to_kombu(body: bytes) -> None:
    from task_server._intake import decodes_alike, message_refusal

    message = _kombu_message(body)
    assert message_refusal(message, None, 1_000_000, JSON) is None
    assert not decodes_alike(message)
    if b"datetime" in body:
        assert type(message.payload[0][0]).__name__ == "datetime"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=24,
)


def read(parse: Callable[[Any], Any], text: bytes | str) -> str:
    """What `parse` makes of `text`, as text: repr tells NaN, -0.0 and 1.0 from 1; or the error's type and message."""
    try:
        return repr(parse(text))
    except (ValueError, RecursionError) as error:
        return f"{type(error).__name__}: {error}"


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES, ascii_only=st.booleans(), utf=st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_json_is_read_as_json_loads_reads_it(value: Any, ascii_only: bool, utf: str) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert read(json_value, text) == read(json.loads, text)
    raw = text.encode(utf, "surrogatepass")
    assert read(json_value, raw) == read(json.loads, raw)


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',  # a lone surrogate escape: json reads it, pydantic-core refuses it
        '["\udcff"]',  # a lone surrogate itself in a str (py-amqp's body in a codec that yields one): TypeError there
        b"\xef\xbb\xbf[1]",  # a BOM
        "[" * 300 + "]" * 300,  # past pydantic-core's nesting limit, within json's
        "[" * 5000 + "]" * 5000,  # past json's: RecursionError, as before
        '{"a": 1, "a": 2}',
        "[NaN, Infinity, -Infinity, 1e400, -0, -0.0, 123456789012345678901234567890]",
        "1" * 5000,  # more digits than Python converts
        '"a\x01b"',  # a control character in a string
        "[1,]",
        "{'a': 1}",
        "01",
        "[1] trailing",
        b'"\xc3"',  # not UTF-8
        b"",
        "\x0c1",
    ],
)
def test_json_and_not_json_are_read_as_json_loads_reads_them(text: bytes | str) -> None:
    assert read(json_value, text) == read(json.loads, text)


def test_an_escaped_non_ascii_character_is_never_read_by_the_floors_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery and kombu write JSON with escapes; pydantic-core 2.18.1 (what pydantic 2.7, the declared
    floor, pins) read each escaped non-ASCII character as the Latin-1 reading of its UTF-8 bytes
    ("caf\\u00e9": "cafÃ©", checked under make test-lowest's virtualenv): such text is read by json."""
    import task_server._message_checks as checks

    real = checks.from_json

    def floors_from_json(text: bytes | str, **options: Any) -> Any:
        escaped = b"\\u" in text if isinstance(text, bytes) else "\\u" in text
        value = real(text, **options)
        return json.loads(json.dumps(value).replace("\\u00e9", "\\u00c3\\u00a9")) if escaped else value

    monkeypatch.setattr(checks, "from_json", floors_from_json)
    body = json.dumps([["café"], {"é": 1}, {}])
    assert json_value(body) == json_value(body.encode()) == [["café"], {"é": 1}, {}]
