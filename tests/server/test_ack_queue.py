"""The queue of late acks the event loop sends in groups (`task_server._grouped_acks`), without a broker."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from task_server import _grouped_acks
from task_server._grouped_acks import AckQueue


class _Channel:
    def __init__(self) -> None:
        self.acked: list[int] = []

    @contextlib.contextmanager
    def acks_grouped(self) -> Iterator[None]:
        yield


class _Message:
    def __init__(self, channel: _Channel, tag: int) -> None:
        self.channel, self.delivery_tag = channel, tag

    def ack_log_error(self, logger: Any, errors: Any) -> None:
        self.channel.acked.append(self.delivery_tag)


class _Hub:
    """kombu's hub as its loop runs callbacks: all those ready, popped at once, one after another;
    one that raises (kombu's own ack_log_error re-raises BrokenPipeError) drops the rest."""

    def __init__(self) -> None:
        self.ready: list[Callable[[], Any]] = []

    def call_soon(self, callback: Callable[[], Any]) -> None:
        self.ready.append(callback)

    def turn(self) -> None:
        todo, self.ready = self.ready, []
        for callback in todo:
            callback()


def _broken_pipe() -> None:
    raise BrokenPipeError


def test_acks_are_still_sent_after_the_loop_dropped_the_callback_that_would_have_sent_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_grouped_acks, "RESCHEDULE_AFTER", 0.0, raising=False)
    queue, hub, channel = AckQueue(), _Hub(), _Channel()
    hub.call_soon(_broken_pipe)  # another ack, on a connection that broke
    queue.add(hub, _Message(channel, 1), (OSError,))
    with pytest.raises(BrokenPipeError):
        hub.turn()  # the queue's callback never ran: dropped with the rest of the turn
    queue.add(hub, _Message(channel, 2), (OSError,))  # after the consumer reconnected
    hub.turn()
    assert channel.acked == [1, 2]
