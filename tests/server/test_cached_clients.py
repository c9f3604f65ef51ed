"""The worker's Redis channel keeps kombu's `client` and `subclient`, and its result backend Celery's
`client`, as kombu and Celery do (made once by their own function, kept in the instance's
`__dict__`, closed with the channel), read as plain attributes once made (`_internals`)."""

from __future__ import annotations

import pytest
from celery.backends.redis import RedisBackend
from kombu.transport import redis as kombu_redis

from task_contracts import resolve_urls
from task_server._app import create_app
from task_server._backend import ResultBackend, SentinelResultBackend
from task_server._settings import WorkerSettings
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


def test_the_result_backend_client_is_made_once_by_celery(private_redis: RedisProcess) -> None:
    backend = create_app(WorkerSettings(urls=resolve_urls(private_redis.url))).backend
    made = backend.client
    assert backend.client is made
    assert backend.__dict__["client"] is made
    assert made.ping()
    assert made.connection_pool.connection_kwargs["port"] == private_redis.port  # Celery's connection parameters
    for backend_class in (ResultBackend, SentinelResultBackend):
        assert not hasattr(backend_class.client, "__set__")
        assert backend_class.client.func is RedisBackend.client.func
