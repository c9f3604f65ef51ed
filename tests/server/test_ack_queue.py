"""The queue of late acks the event loop sends in groups (`task_server._grouped_acks`), without a broker."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.asynchronous import Hub
from kombu.asynchronous.timer import Timer

from task_server import _grouped_acks
from task_server._grouped_acks import LOOP_ACK_DELAY, AckQueue
from task_server.testing import wait_until


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


def _kombu_hub() -> Hub:
    hub = Hub(Timer())
    hub.poller  # created as Celery's Hub step does before the loop starts  # noqa: B018
    return hub


def test_an_on_loop_calls_ack_is_sent_by_the_loops_timer_after_the_delay_with_those_queued_meanwhile() -> None:
    queue, hub, channel = AckQueue(), _kombu_hub(), _Channel()
    try:
        queue.add(hub, _Message(channel, 1), (OSError,), delay=LOOP_ACK_DELAY)
        queue.add(hub, _Message(channel, 2), (OSError,), delay=LOOP_ACK_DELAY)
        assert len(hub.timer.queue) == 1  # one send for both
        assert channel.acked == []

        def fired() -> bool:
            hub.fire_timers()  # what the loop does on each turn
            return bool(channel.acked)

        wait_until(fired, 1, "the delayed send")
        assert channel.acked == [1, 2]
    finally:
        hub.close()


def test_acks_still_waiting_for_their_delay_are_sent_as_the_event_loop_closes() -> None:
    """A warm shutdown closes the loop (Celery's Hub step) before the consumer closes its connection,
    and kombu's timers never run again: the queue sends what is left then."""
    queue, hub, channel = AckQueue(), _kombu_hub(), _Channel()
    queue.add(hub, _Message(channel, 1), (OSError,), delay=60.0)
    hub.close()
    assert channel.acked == [1]


def test_an_ack_with_no_delay_does_not_wait_for_a_delayed_send() -> None:
    queue, hub, channel = AckQueue(), _Hub(), _Channel()
    hub.call_later = lambda delay, callback: None  # type: ignore[attr-defined]  # a timer that never fires
    hub.on_close = set()  # type: ignore[attr-defined]
    queue.add(hub, _Message(channel, 1), (OSError,), delay=60.0)
    queue.add(hub, _Message(channel, 2), (OSError,))  # a thread-served call's: on the next turn
    hub.turn()
    assert channel.acked == [1, 2]


class _LostMessage(_Message):
    def ack_log_error(self, logger: Any, errors: Any) -> None:
        raise BrokenPipeError  # as kombu's own ack_log_error re-raises it


def test_acks_waiting_as_the_loop_resets_after_a_lost_connection_are_dropped_without_cutting_the_reset_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Celery's loop resets the hub (closes it and makes a new poller) on a connection error; an
    error out of a close callback would leave it without its poller."""
    queue, hub = AckQueue(), _kombu_hub()
    try:
        queue.add(hub, _LostMessage(_Channel(), 1), (OSError,), delay=60.0)
        hub.reset()
        assert hub._poller is not None
        assert "acks dropped as the event loop closed" in caplog.text
        queue.send()  # nothing left
    finally:
        hub.close()
