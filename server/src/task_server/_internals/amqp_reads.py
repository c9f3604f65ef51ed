"""py-amqp's frame reading on the worker's event loop: what the socket holds, read at once.

kombu's event loop reads a RabbitMQ connection one method per turn (`drain_events(timeout=0)`),
and py-amqp reads each frame with exact-length `recv` calls, setting the socket's timeout before
and after each frame: a delivery (method, header and body frames) took nine `recv` and six
`settimeout` calls and a whole turn of the loop. Each of those calls lets go of the GIL, and with
the worker's threads running calls, the loop waited for it again at every one. Under 32 callers the
worker's socket held 11-19 KB of deliveries unread (`ss`), while its event loop's own CPU was a
quarter of a core.

Here a readable socket is read once, as far as it holds (up to `CHUNK`), into py-amqp's own read
buffer, and every complete frame in the buffer is handed to the connection as py-amqp's
`blocking_read` would: a burst of deliveries costs one `recv` and one turn of the loop. A partial
frame stays in the buffer for the next read, as py-amqp keeps one after a read timeout.

Written against py-amqp 5.4 (plain TCP transport; TLS connections keep kombu's reading).
"""

from __future__ import annotations

import socket
from struct import unpack_from
from typing import Any

from amqp.exceptions import RecoverableConnectionError
from amqp.transport import TCPTransport
from kombu.transport import pyamqp

RELIED_ON: tuple[tuple[type, str], ...] = (
    (TCPTransport, "_read_buffer"),
    (pyamqp.Transport, "on_readable"),  # overridden by the worker's transport (`_transport`)
)

#: Bytes read from the socket at most per turn of the loop (about 80 deliveries of `client.add`).
CHUNK = 65536
_FRAME_OVERHEAD = 8  # type (1), channel (2), size (4) before the payload; the frame-end octet (1) after


def reads_in_bursts(connection: Any) -> bool:
    """Whether `connection` (py-amqp's) can be read here: a plain TCP one (TLS keeps kombu's reads)."""
    return type(connection.transport) is TCPTransport


def read_available(connection: Any) -> None:
    """Read what the socket of `connection` holds now, then handle every complete frame received."""
    transport = connection.transport
    try:
        chunk = transport.sock.recv(CHUNK, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        chunk = None  # woken for nothing: nothing to read yet
    if chunk == b"":
        transport.connected = False
        raise RecoverableConnectionError("Server unexpectedly closed connection")
    if chunk:
        transport._read_buffer += chunk
    while connection.transport is transport and holds_frame(transport._read_buffer):
        connection.on_inbound_frame(transport.read_frame())  # served from the buffer: no system call


def buffered(connection: Any) -> bool:
    """Whether py-amqp holds received bytes not handled yet (more frames of a burst, or part of one)."""
    return bool(getattr(connection.transport, "_read_buffer", b""))


def holds_frame(buffer: bytes) -> bool:
    """Whether `buffer` starts with a whole frame."""
    if len(buffer) < _FRAME_OVERHEAD:
        return False
    (size,) = unpack_from(">I", buffer, 3)
    return bool(len(buffer) >= size + _FRAME_OVERHEAD)
