"""A signal wakes the worker's event loop at once, so that a SIGTERM starts the warm shutdown at once
(Celery's handler only sets a flag that the loop reads on its next turn, up to a second later)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest
from kombu.asynchronous import Hub

from task_server._signal_wakeup import forget_in_child, wake_on_signals


@pytest.fixture
def hub() -> Iterator[Hub]:
    assert threading.current_thread() is threading.main_thread()  # where Python delivers signals
    previous = signal.signal(signal.SIGUSR2, lambda *_: None)
    loop = Hub()
    try:
        yield loop
    finally:
        forget_in_child()  # closes the pipe and sets no wakeup fd, as in a pool process
        loop.close()
        signal.signal(signal.SIGUSR2, previous)


def test_a_signal_makes_the_event_loop_turn_and_its_reader_drains_the_pipe(hub: Hub) -> None:
    wake_on_signals(hub)
    wake_on_signals(hub)  # again, as after a reconnection: still one pipe
    (reader,) = hub.readers
    assert hub.poller.poll(0) == []

    os.kill(os.getpid(), signal.SIGUSR2)
    ready = hub.poller.poll(30)  # returns at once; without the pipe it would wait the whole bound

    assert [fd for fd, _ in ready] == [reader]
    callback, args = hub.readers[reader]
    callback(*args)
    assert hub.poller.poll(0) == []
