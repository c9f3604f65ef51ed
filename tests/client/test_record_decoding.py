"""A record read from Redis becomes the dict `json.loads` makes of it, whichever parser reads it
(`_replies.decode_record`: pydantic-core's, then `json` for what that one refuses), or None."""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_client._replies import decode_record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)


def same(left: Any, right: Any) -> bool:
    # repr compares NaN with NaN, -0.0 with 0.0 apart, and types (1 is not 1.0).
    return repr(left) == repr(right)


@settings(max_examples=400, deadline=None)
@given(record=st.dictionaries(st.text(), json_values, max_size=6), ascii_only=st.booleans())
def test_a_record_decodes_as_json_loads_reads_it(record: dict[str, Any], ascii_only: bool) -> None:
    raw = json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(raw)
    except ValueError:
        expected = None
    assert same(decode_record(raw), expected)
    assert same(decode_record(raw.decode("utf-8", "surrogatepass")), expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"result": "\\ud800"}', {"result": "\ud800"}),  # a lone surrogate escape: json reads it
        (codecs.BOM_UTF8 + b'{"status": "SUCCESS"}', {"status": "SUCCESS"}),
        ('{"status": "SUCCESS"}'.encode("utf-16"), {"status": "SUCCESS"}),
        (
            b'{"result": NaN, "n": 123456789012345678901234567890}',
            {"result": float("nan"), "n": 123456789012345678901234567890},
        ),
        (b'{"a": 1, "a": 2}', {"a": 2}),
        (b"[1, 2]", None),
        (b'"SUCCESS"', None),
        (b"not json", None),
        (b'{"a": 1} trailing', None),
        (b'{"a": "\xc3"}', None),
    ],
)
def test_records_json_reads_and_values_that_are_not_records(raw: bytes, expected: dict[str, Any] | None) -> None:
    assert same(decode_record(raw), expected)


def misread(value: Any) -> Any:
    """What pydantic-core 2.18.1's from_json makes of JSON written with escapes (`ensure_ascii`):
    each escaped non-ASCII character read as the Latin-1 reading of its UTF-8 bytes (\\u00e9: "Ã©")."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("latin-1")
    if isinstance(value, list):
        return [misread(item) for item in value]
    if isinstance(value, dict):
        return {misread(key): misread(item) for key, item in value.items()}
    return value


def floors_from_json(real: Any) -> Any:
    """pydantic-core 2.18.1's from_json, what pydantic 2.7 (the declared floor) pins."""

    def read(text: bytes | str, **options: Any) -> Any:
        escaped = b"\\u" in text if isinstance(text, bytes) else "\\u" in text
        value = real(text, **options)
        return misread(value) if escaped else value

    return read


def test_an_escaped_non_ascii_character_is_never_read_by_the_floors_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery writes records with JSON's escapes; pydantic-core 2.18.1 read "café" as "cafÃ©" (checked
    under make test-lowest's virtualenv): such a record is read by json."""
    import task_client._replies as replies

    monkeypatch.setattr(replies, "from_json", floors_from_json(replies.from_json))
    record = {"status": "SUCCESS", "result": ["café", "\U0001f600"], "é": 1}
    raw = json.dumps(record).encode()
    assert decode_record(raw) == record
    assert decode_record(raw.decode()) == record
