"""The worker's RabbitMQ channel, which can send the acks of several calls at once.

Each call's late ack was a `basic.ack` of its own: a write of its own from the event loop, and a
settle command of its own in the quorum queue's log. Inside `acks_grouped()` the channel only notes
the acks asked for, and sends them at the end in one write: a run of them that covers the oldest
deliveries the channel holds goes as one `basic.ack` with `multiple=True`, the others one by one.

`multiple=True` settles every delivery up to a tag, so the channel keeps the tags it has received
and not yet settled (`outstanding`): every delivery to a consumer passes through kombu's
`message_to_python` before anything else sees it (a delivery for a consumer py-amqp does not
know is rejected by py-amqp, through `basic_reject`). A run is only ever acked as a whole when every
outstanding tag up to its last one was asked to be acked: a delivery still running, or one that
is being rejected or requeued, ends the run.

Written against py-amqp 5.4 and kombu 5.7.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from amqp.exceptions import RecoverableConnectionError
from amqp.transport import TCPTransport
from kombu.transport import pyamqp

from .._sizes import text_bytes
from .amqp_frames import HEADER_FRAME_BYTES, RECEIVED_BYTES

RELIED_ON: tuple[tuple[type, str], ...] = (
    (TCPTransport, "_write"),
    (pyamqp.Channel, "message_to_python"),  # overridden below: where a delivery's tag is noted
    (pyamqp.Channel, "no_ack_consumers"),  # py-amqp's: the consumers whose deliveries are never acked
)


class GroupingChannel(pyamqp.Channel):
    """kombu's py-amqp channel, whose acks can be sent in groups (`acks_grouped`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outstanding: set[int] = set()  # delivery tags received and not settled yet
        self._grouped: list[int] | None = None

    def message_to_python(self, raw_message: Any) -> Any:
        # A no-ack consumer's delivery (remote control, gossip) is settled as it is delivered.
        if raw_message.delivery_info.get("consumer_tag") not in (self.no_ack_consumers or ()):
            self.outstanding.add(raw_message.delivery_tag)
        message = super().message_to_python(raw_message)  # type: ignore[no-untyped-call]
        header = message.properties.pop(HEADER_FRAME_BYTES, None)  # `amqp_frames`
        if header is not None:  # the whole message as received: header frame and body
            setattr(message, RECEIVED_BYTES, header + text_bytes(message.body or b""))  # a str with content_encoding
        return message

    def basic_ack(self, delivery_tag: int, multiple: bool = False, argsig: str = "Lb") -> Any:
        if self._grouped is not None and not multiple:
            self._grouped.append(delivery_tag)
            return None
        self.forget_settled(delivery_tag, multiple)
        return super().basic_ack(delivery_tag, multiple, argsig)

    def basic_reject(self, delivery_tag: int, requeue: bool, argsig: str = "Lb") -> Any:
        self.forget_settled(delivery_tag, multiple=False)
        return super().basic_reject(delivery_tag, requeue, argsig)

    def basic_recover(self, requeue: bool = False) -> Any:
        self.outstanding.clear()  # every unacked delivery goes back to the queue
        return super().basic_recover(requeue)

    def basic_recover_async(self, requeue: bool = False) -> Any:
        self.outstanding.clear()
        return super().basic_recover_async(requeue)

    @contextlib.contextmanager
    def acks_grouped(self) -> Iterator[None]:
        """Note the acks asked for inside; send them at the end, in one write (see the module)."""
        self._grouped = []
        try:
            yield
        finally:
            tags, self._grouped = self._grouped, None
            if tags:
                self.send_group(tags)

    def send_group(self, tags: list[int]) -> None:
        if self.connection is None:
            # Closed meanwhile (a reconnect): py-amqp's error, as each ack sent alone meets it, one
            # of the connection errors an ack's caller logs (not an AttributeError out of the loop).
            raise RecoverableConnectionError("connection already closed")
        asked = set(tags)
        still_held = self.outstanding - asked
        first_held = min(still_held) if still_held else None
        run = sorted(tag for tag in asked if first_held is None or tag < first_held)
        alone = sorted(asked.difference(run))
        transport = self.connection.transport
        with one_write(transport):
            if len(run) > 1:
                self.basic_ack(run[-1], multiple=True)
            else:
                alone = sorted(alone + run)
            for tag in alone:
                self.basic_ack(tag)

    def forget_settled(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.outstanding = {tag for tag in self.outstanding if tag > delivery_tag}
        else:
            self.outstanding.discard(delivery_tag)


class GroupingConnection(pyamqp.Connection):
    """kombu's py-amqp connection, whose channels are `GroupingChannel`s."""

    Channel = GroupingChannel


@contextlib.contextmanager
def one_write(transport: Any) -> Iterator[None]:
    """What py-amqp writes on `transport` inside, written at the end in one piece (one system call).

    py-amqp hands each frame over as a view of one buffer it reuses for the next frame: copied here."""
    parts: list[bytes] = []
    write = transport._write
    transport._write = lambda data: parts.append(bytes(data))
    try:
        yield
    finally:
        transport._write = write
    if parts:
        transport.write(b"".join(parts))
