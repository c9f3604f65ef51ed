"""The producer's Redis channel reuses one redis-py client for its publishes."""

from __future__ import annotations

import pytest
from kombu import Exchange, Producer, Queue

from task_client._transport import ReusingConnection
from task_server.testing import RedisProcess

pytestmark = pytest.mark.e2e


def test_publishes_on_one_channel_share_one_client(private_redis: RedisProcess) -> None:
    queue = Queue("reuse-test", Exchange("reuse-test"), routing_key="reuse-test")
    with ReusingConnection(private_redis.url) as connection:
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
