"""The producer's Redis channel (plain or Sentinel) reuses one redis-py client for its publishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Exchange, Producer, Queue

from task_client._transport import ReusingConnection
from task_contracts import celery_url
from task_server.testing import RedisProcess, SentinelGroup

pytestmark = pytest.mark.e2e


def test_publishes_on_one_channel_share_one_client(private_redis: RedisProcess) -> None:
    with ReusingConnection(private_redis.url) as connection:
        three_publishes_share_one_client(connection)


def test_publishes_through_sentinel_share_one_client_of_the_masters_pool(tmp_path: Path) -> None:
    with SentinelGroup(str(tmp_path)) as group:
        group.start()
        broker = celery_url(group.url)
        with ReusingConnection(broker.url, transport_options=dict(broker.transport_options)) as connection:
            three_publishes_share_one_client(connection)


def three_publishes_share_one_client(connection: ReusingConnection) -> None:
    queue = Queue("reuse-test", Exchange("reuse-test"), routing_key="reuse-test")
    channel = connection.default_channel
    producer = Producer(channel, exchange=queue.exchange, routing_key="reuse-test")
    queue(channel).declare()
    clients = []
    for number in range(3):
        producer.publish({"n": number})
        with channel.conn_or_acquire() as client:
            clients.append(client)
    assert clients[0] is clients[1] is clients[2]
    assert clients[0].connection_pool is channel.pool
    assert queue(channel).queue_declare(passive=True).message_count == 3
