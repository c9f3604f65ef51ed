"""Awaited calls made in the same event-loop tick are published together.

`asyncio.gather(*(client.aio.add(i, i) for i in range(10_000)))` starts 10,000 calls in one tick.
Publishing each alone costs one Redis round trip and blocks the caller's loop for it; here every
call started in a tick joins one pipelined publish (`Producer.publish_many`) run on the loop's
default executor, so the loop stays free and a burst costs a few round trips. A lone call pays
one hop to the executor thread. Only awaited calls are coalesced: `submit` publishes at once, since
its caller may never await anything afterwards.
"""

from __future__ import annotations

import asyncio
import weakref

from ._producer import Outgoing, Producer


class TickPublisher:
    """Collects the messages of one loop tick and publishes them in one executor job."""

    def __init__(self, producer: Producer, loop: asyncio.AbstractEventLoop) -> None:
        self._producer = producer
        self._loop = loop
        self._pending: list[tuple[Outgoing, asyncio.Future[None]]] = []

    def publish(self, message: Outgoing) -> asyncio.Future[None]:
        """A future resolved once `message` is published, or failed with `BrokerUnavailable`."""
        published: asyncio.Future[None] = self._loop.create_future()
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append((message, published))
        return published

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        job = self._loop.run_in_executor(None, self._publish, [message for message, _ in batch])
        job.add_done_callback(lambda done: _settle(done, [published for _, published in batch]))

    def _publish(self, messages: list[Outgoing]) -> None:
        if len(messages) == 1:  # a lone call publishes exactly as a sync one: same retry, same error
            self._producer.publish(messages[0], contract=messages[0].name)
        else:
            self._producer.publish_many(messages, contract=messages[0].name)


def _settle(job: asyncio.Future[None], waiting: list[asyncio.Future[None]]) -> None:
    error = None if job.cancelled() else job.exception()
    for published in waiting:
        if published.done():
            continue
        if error is not None:
            published.set_exception(error)
        elif job.cancelled():
            published.cancel()
        else:
            published.set_result(None)


_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, TickPublisher]] = (
    weakref.WeakKeyDictionary()
)


def tick_publisher(producer: Producer) -> TickPublisher:
    """The running loop's publisher for `producer` (one per loop and client)."""
    loop = asyncio.get_running_loop()
    by_producer = _publishers.setdefault(loop, {})
    publisher = by_producer.get(id(producer))
    if publisher is None or publisher._producer is not producer:
        publisher = by_producer[id(producer)] = TickPublisher(producer, loop)
    return publisher
