"""The worker's RabbitMQ channel sends the acks of several calls at once (`_internals.amqp_acks`):
one write, one `basic.ack(multiple=True)` for a run covering the oldest deliveries it holds, and
never an ack for a delivery that was not asked to be acked."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
import pytest
from kombu import Connection

from task_client import TaskClient
from task_server._grouped_acks import AckQueue
from task_server._internals.amqp_acks import GroupingChannel
from task_server._transport import BurstReadingTransport
from task_server.testing import RabbitMQProcess, wait_until

from ..catalog import diagnostics
from .amqp_worker import worker_on_own_vhost

pytestmark = pytest.mark.e2e

QUEUE = "grouped-acks"


def _ready(rabbitmq: RabbitMQProcess, vhost: str) -> int:
    return int(_declared(rabbitmq, vhost, QUEUE).message_count)


def _back_in_the_queue(rabbitmq: RabbitMQProcess, vhost: str, count: int) -> None:
    """Wait (bounded) for the unacked deliveries of a closed channel to be ready again: the quorum
    queue returns them moments after the close (a fresh-clone run read 0 at once, Dec 4 2026)."""
    wait_until(lambda: _ready(rabbitmq, vhost) == count, 10, f"{count} delivery back in the queue")


def _declared(rabbitmq: RabbitMQProcess, vhost: str, queue: str) -> Any:
    """The queue's passive declaration: its ready messages and its consumers."""
    connection = amqp.Connection(f"127.0.0.1:{rabbitmq.port}", userid="guest", password="guest", virtual_host=vhost)
    connection.connect()
    try:
        return connection.channel().queue_declare(queue, passive=True)
    finally:
        connection.close()


def _get(channel: Any) -> Any:
    """The next message of the queue, as kombu's consumer makes it (a quorum queue may lag its confirm)."""
    got: list[Any] = []
    wait_until(lambda: bool(got.append(channel.basic_get(QUEUE)) or got[-1]), 10, "a message to get")
    return channel.message_to_python(got[-1])


def test_a_group_acks_the_oldest_run_at_once_and_leaves_a_delivery_not_asked_for(rabbitmq: RabbitMQProcess) -> None:
    vhost, url = rabbitmq.fresh_vhost("acks")
    with Connection(url, transport=BurstReadingTransport) as connection:
        channel: Any = connection.channel()
        assert isinstance(channel, GroupingChannel)
        channel.queue_declare(QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.confirm_select()  # each publish returns once the quorum queue holds it
        for number in range(5):
            channel.basic_publish(amqp.Message(str(number)), routing_key=QUEUE)
        messages = [_get(channel) for _ in range(5)]
        assert [message.delivery_tag for message in messages] == [1, 2, 3, 4, 5]
        writes: list[bytes] = []
        transport = channel.connection.transport
        send = transport._write

        def counted(data: bytes) -> None:
            writes.append(bytes(data))
            send(data)

        transport._write = counted
        try:
            with channel.acks_grouped():
                for index in (1, 0, 3, 4):  # tags 2, 1, 4, 5; tag 3 is still running
                    messages[index].ack()
        finally:
            transport._write = send
        assert len(writes) == 1  # three acks, one write
        assert channel.outstanding == {3}
        # The channel is still open (an ack of an unknown tag closes it) and holds only tag 3.
        channel.basic_qos(0, 10, False)
        assert _ready(rabbitmq, vhost) == 0
        channel.close()
    _back_in_the_queue(rabbitmq, vhost, 1)  # tag 3, never acked


def test_acks_outside_a_group_go_one_by_one(rabbitmq: RabbitMQProcess) -> None:
    vhost, url = rabbitmq.fresh_vhost("acks")
    with Connection(url, transport=BurstReadingTransport) as connection:
        channel: Any = connection.channel()
        channel.queue_declare(QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.confirm_select()
        for number in range(2):
            channel.basic_publish(amqp.Message(str(number)), routing_key=QUEUE)
        _, second = (_get(channel) for _ in range(2))
        second.ack()
        assert channel.outstanding == {1}
        declared = channel.queue_declare(QUEUE, passive=True)  # a round trip: still open
        assert declared.message_count == 0
        channel.close()
    _back_in_the_queue(rabbitmq, vhost, 1)


def test_an_ack_for_a_channel_closed_meanwhile_does_not_stop_the_acks_of_another(rabbitmq: RabbitMQProcess) -> None:
    """As after a reconnect: acks queued for the old channel and for the new one, sent together."""
    vhost, url = rabbitmq.fresh_vhost("acks")
    with Connection(url, transport=BurstReadingTransport) as connection:
        old: Any = connection.channel()
        old.queue_declare(QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        old.confirm_select()
        for number in range(2):
            old.basic_publish(amqp.Message(str(number)), routing_key=QUEUE)
        on_old = _get(old)
        new: Any = connection.channel()
        on_new = _get(new)
        old.close()  # its delivery goes back to the queue

        class Hub:
            def call_soon(self, callback: Any) -> None:
                pass

        queue = AckQueue()
        errors = connection.connection_errors
        queue.add(Hub(), on_old, errors)
        queue.add(Hub(), on_new, errors)
        queue.send()
        new.basic_qos(0, 10, False)  # a round trip: the new channel is still open
        new.close()
    _back_in_the_queue(rabbitmq, vhost, 1)  # the old channel's delivery; the new one's acked


def test_deliveries_to_a_consumer_that_never_acks_are_not_kept_as_outstanding(rabbitmq: RabbitMQProcess) -> None:
    """A no-ack consumer's deliveries (the worker's remote control, gossip) are settled on delivery:
    kept, they would pile up for the worker's lifetime."""
    vhost, url = rabbitmq.fresh_vhost("acks")
    with Connection(url, transport=BurstReadingTransport) as connection:
        channel: Any = connection.channel()
        channel.queue_declare(QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.confirm_select()
        for number in range(3):
            channel.basic_publish(amqp.Message(str(number)), routing_key=QUEUE)
        received: list[Any] = []
        channel.basic_consume(QUEUE, no_ack=True, callback=lambda raw: received.append(channel.message_to_python(raw)))
        while len(received) < 3:
            connection.drain_events(timeout=10)
        assert channel.outstanding == set()
        channel.close()
    assert _ready(rabbitmq, vhost) == 0


def test_a_warm_shutdown_right_after_calls_run_on_the_event_loop_leaves_none_of_them_to_run_again(
    rabbitmq: RabbitMQProcess, tmp_path: Path
) -> None:
    """An on-loop call's ack waits `LOOP_ACK_DELAY` on the loop's timer: a warm shutdown that follows
    at once still sends it before the connection closes, so no delivery goes back to the queue."""
    with (
        worker_on_own_vhost(rabbitmq, str(tmp_path), "loopacks") as served,
        TaskClient(served.url, served.results_url) as client,
    ):
        nap = client.task(diagnostics.nap)
        ran_on = [nap(0.0) for _ in range(20)]
        assert "MainThread" in ran_on  # a lone caller's: on the loop (unless a frame came meanwhile), acked later
        served.worker.stop()
        assert not served.worker.alive()
        vhost = unquote(urlsplit(served.url).path.lstrip("/"))
        declared: list[Any] = []

        def consumer_gone() -> bool:
            declared.append(_declared(rabbitmq, vhost, diagnostics.nap.queue))
            return int(declared[-1].consumer_count) == 0  # its deliveries settled or back in the queue

        wait_until(consumer_gone, 30, "the worker's consumer to be gone")
        assert declared[-1].message_count == 0
        assert "Couldn't ack" not in served.worker.log()
