"""The worker's Redis channel keeps kombu's `client` and `subclient` as kombu does (made once by
kombu's own function, kept in the channel's `__dict__`, closed with the channel), read as plain
attributes once made (`_internals.channel`)."""

from __future__ import annotations

import pytest
from kombu.transport import redis as kombu_redis

from task_server._transport import GuardedConnection, GuardedSentinelChannel
from task_server.testing import RedisProcess

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["client", "subclient"])
def test_a_channel_client_is_made_once_and_closed_with_the_channel(private_redis: RedisProcess, name: str) -> None:
    connection = GuardedConnection(private_redis.url)
    channel = connection.default_channel
    made = getattr(channel, name)
    assert getattr(channel, name) is made
    assert channel.__dict__[name] is made  # where kombu's close looks for it
    if name == "client":
        assert made.ping()
        assert made.connection_pool is channel.async_pool  # kombu's: the asynchronous pool
    connection.close()
    assert made.connection is None  # kombu's _close_clients took it down


def test_a_channel_client_is_read_without_a_lock_once_made() -> None:
    for channel_class in (GuardedConnection("redis://").transport.Channel, GuardedSentinelChannel):
        for name in ("client", "subclient"):
            # No __set__: once in the instance's __dict__ it is read as any attribute, not through a locked descriptor.
            descriptor = getattr(channel_class, name)
            assert not hasattr(descriptor, "__set__")
            assert descriptor.func is getattr(kombu_redis.Channel, name).func
