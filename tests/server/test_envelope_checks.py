"""The Redis transport's check of a popped envelope, before kombu reads it (no Redis: the
end-to-end proofs are in tests/e2e/test_hostile_envelopes.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
