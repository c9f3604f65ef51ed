"""The worker's event loop reads every frame its RabbitMQ socket holds in one turn (`_internals.amqp_reads`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from struct import pack
from types import SimpleNamespace
from typing import Any

import pytest
from amqp.exceptions import RecoverableConnectionError
from amqp.transport import TCPTransport

from task_server._internals.amqp_reads import buffered, read_available, reads_in_bursts


def _frame(channel: int, payload: bytes, frame_type: int = 1) -> bytes:
    return pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


@pytest.fixture
def pair() -> Iterator[tuple[Any, list[tuple[int, int, bytes]], socket.socket]]:
    """A py-amqp TCP transport on one end of a socket pair (the broker's end is returned too), and
    the frames its connection was handed."""
    ours, broker = socket.socketpair()
    transport = TCPTransport("127.0.0.1:5672")  # not connected: the socket pair stands in
    transport.sock = ours
    transport._setup_transport()
    transport.connected = True
    handed: list[tuple[int, int, bytes]] = []

    def on_inbound_frame(frame: tuple[int, int, bytes]) -> None:
        handed.append((frame[0], frame[1], bytes(frame[2])))

    connection = SimpleNamespace(transport=transport, on_inbound_frame=on_inbound_frame)
    with ours, broker:
        yield connection, handed, broker


def test_every_complete_frame_on_the_socket_is_handled_in_one_read_and_a_partial_one_waits(pair: Any) -> None:
    connection, handed, broker = pair
    assert reads_in_bursts(connection)
    frames = [_frame(1, b"method"), _frame(1, b"header", 2), _frame(1, b"body" * 100, 3)]
    last = _frame(1, b"next method")
    broker.sendall(b"".join(frames) + last[:5])
    read_available(connection)
    assert handed == [(1, 1, b"method"), (2, 1, b"header"), (3, 1, b"body" * 100)]
    assert buffered(connection)  # the start of the next frame: kept for the next read
    broker.sendall(last[5:])
    read_available(connection)
    assert handed[-1] == (1, 1, b"next method")
    assert not buffered(connection)


def test_a_read_with_nothing_to_read_hands_nothing(pair: Any) -> None:
    connection, handed, _ = pair
    read_available(connection)
    assert handed == [] and not buffered(connection)


def test_a_socket_the_broker_closed_fails_as_a_lost_connection(pair: Any) -> None:
    connection, _, broker = pair
    broker.close()
    with pytest.raises(RecoverableConnectionError):
        read_available(connection)
    assert not connection.transport.connected


def test_tls_connections_keep_kombus_reads() -> None:
    connection = SimpleNamespace(transport=SimpleNamespace())
    assert not reads_in_bursts(connection)
