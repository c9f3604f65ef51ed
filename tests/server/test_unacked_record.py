"""The unacked entry of a popped message, written around the text it was popped as (no Redis: the
end-to-end proofs that entries are restored are in tests/e2e/test_crash_redelivery.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kombu.utils.json import dumps, loads

from task_server._transport import unacked_record

ENVELOPE = {
    "body": "W1s0LCA3XSwge30sIHt9XQ==",
    "headers": {"id": "7", "task": "math.add", "argsrepr": "(4, 7)", "eta": None},
    "properties": {"delivery_tag": "t-1", "delivery_info": {"exchange": "", "routing_key": "math"}, "priority": 0},
}


class Channel:
    def __init__(self, payload: Any = None, text: str | None = None) -> None:
        self.popped = (payload, text)

    def popped_text(self, payload: Any) -> str | None:
        return self.popped[1] if self.popped[0] is payload else None


def message(payload: Any, exchange: Any = "", routing_key: Any = "math") -> Any:
    return SimpleNamespace(_raw=payload, delivery_info={"exchange": exchange, "routing_key": routing_key})


@pytest.mark.parametrize(("exchange", "routing_key"), [("", "math"), ("tasks", 'odd "key" \u00e9'), (None, "math")])
def test_the_entry_around_the_popped_text_reads_as_kombus_own(exchange: Any, routing_key: Any) -> None:
    text = dumps(ENVELOPE)
    payload = loads(text)
    popped = message(payload, exchange, routing_key)
    entry = unacked_record(Channel(payload, text), popped)
    assert loads(entry) == loads(dumps([payload, exchange, routing_key])) == [ENVELOPE, exchange, routing_key]
    if isinstance(exchange, str):
        assert entry.startswith("[" + text + ",")  # the popped text itself, not encoded again


def test_without_the_popped_text_the_envelope_is_encoded() -> None:
    payload = json.loads(json.dumps(ENVELOPE))
    other = json.loads(json.dumps(ENVELOPE))  # an equal envelope is not the one the text was parsed into
    entry = unacked_record(Channel(other, dumps(other)), message(payload))
    assert entry == dumps([payload, "", "math"])
