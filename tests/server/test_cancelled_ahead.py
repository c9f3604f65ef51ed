"""Calls cancelled while queued are dropped on arrival only with the caller's cancel token."""

from __future__ import annotations

from task_contracts.wire import CANCEL_HASH_HEADER, cancel_hash
from task_server import _cancelled_ahead


def headers(task_id: str, token: str | None) -> dict[str, str]:
    found = {"id": task_id, "task": "math.add"}
    if token is not None:
        found[CANCEL_HASH_HEADER] = cancel_hash(token)
    return found


def test_only_a_message_whose_cancel_hash_matches_the_announced_token_is_dropped() -> None:
    _cancelled_ahead.cancelled(None, calls={"a": "token-a", "b": "forged", "c": "token-c", 7: "x", "d": 8})
    assert _cancelled_ahead.drop_on_arrival(headers("a", "token-a"))
    assert not _cancelled_ahead.drop_on_arrival(headers("a", "token-a"))  # once only
    assert not _cancelled_ahead.drop_on_arrival(headers("b", "token-b"))  # someone else's broadcast
    assert not _cancelled_ahead.drop_on_arrival(headers("c", None))  # no cancel_hash: admission decides
    assert not _cancelled_ahead.drop_on_arrival(headers("d", "8"))
    assert not _cancelled_ahead.drop_on_arrival(None)
    _cancelled_ahead.cancelled(None, calls="junk")


def test_the_announced_calls_kept_are_bounded() -> None:
    _cancelled_ahead.cancelled(None, calls={f"id-{i}": "t" for i in range(_cancelled_ahead.MAX_KEPT + 10)})
    assert len(_cancelled_ahead._kept) == _cancelled_ahead.MAX_KEPT
    assert not _cancelled_ahead.drop_on_arrival(headers("id-0", "t"))  # the oldest were forgotten
    assert _cancelled_ahead.drop_on_arrival(headers(f"id-{_cancelled_ahead.MAX_KEPT + 9}", "t"))
    _cancelled_ahead._kept.clear()
