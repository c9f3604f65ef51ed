"""What the worker configures per broker, without any broker (the end-to-end proofs are in tests/e2e)."""

from __future__ import annotations

from task_contracts import resolve_urls
from task_server import WorkerSettings
from task_server._app import celery_config
from task_server._backend import ResultBackend, SentinelResultBackend, backend_class
from task_server._transport import GuardedConnection, GuardedSentinelTransport, GuardedTransport

from ..catalog import CATALOG as TEST_CATALOG

SENTINELS = "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380/0?master_name=mymaster"


def test_rabbitmq_gets_confirms_and_quorum_queues_and_no_visibility_timeout() -> None:
    urls = resolve_urls("amqp://guest:guest@127.0.0.1:9//", "redis://127.0.0.1:9/0")
    config = celery_config(WorkerSettings(urls=urls), TEST_CATALOG)
    assert config["broker_transport_options"] == {"confirm_publish": True}  # no Redis-only option
    assert config["task_create_missing_queue_type"] == "quorum"
    assert config["task_default_queue_type"] == "classic"  # Celery's `celery` queue, for stock producers
    assert config["result_backend"] == "redis://127.0.0.1:9/0"


def test_redis_keeps_its_visibility_timeout() -> None:
    urls = resolve_urls("redis://127.0.0.1:9/0")
    config = celery_config(WorkerSettings(urls=urls, visibility_timeout=60), TEST_CATALOG)
    assert config["broker_transport_options"]["visibility_timeout"] == 60
    assert "task_default_queue_type" not in config


def test_sentinel_names_its_master_for_broker_and_backend() -> None:
    urls = resolve_urls(SENTINELS)
    config = celery_config(WorkerSettings(urls=urls), TEST_CATALOG)
    assert config["broker_url"] == config["result_backend"] == "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380/0"
    assert config["broker_transport_options"]["master_name"] == "mymaster"
    assert config["broker_transport_options"]["visibility_timeout"] == 300
    assert config["result_backend_transport_options"] == {"master_name": "mymaster"}
    assert backend_class(config["result_backend"]) is SentinelResultBackend
    assert backend_class("redis://127.0.0.1:9/0") is ResultBackend
    # Both Redis transports keep the guard against items that are no Celery envelope.
    assert GuardedConnection(config["broker_url"]).get_transport_cls() is GuardedSentinelTransport
    assert GuardedConnection("redis://127.0.0.1:9/0").get_transport_cls() is GuardedTransport


def _multiplier(settings: WorkerSettings) -> object:
    return celery_config(settings, TEST_CATALOG)["worker_prefetch_multiplier"]


def test_rabbitmq_reserves_ahead_for_the_threads_serving_contracts_too() -> None:
    urls = resolve_urls("amqp://guest:guest@127.0.0.1:9//", "redis://127.0.0.1:9/0")
    # Celery multiplies by the processes: 2 x 20 = 4 for each of 2 processes and 8 threads.
    assert _multiplier(WorkerSettings(urls=urls, concurrency=2)) == 20
    assert _multiplier(WorkerSettings(urls=urls, autoscale=(4, 1))) == 12
    # No threads, or threads serving nothing: Celery's 4.
    for settings in (
        WorkerSettings(urls=urls, concurrency=2, threads=0),
        WorkerSettings(urls=urls, concurrency=2, pool="solo"),
    ):
        assert _multiplier(settings) == 4
    # An explicit multiplier is Celery's, untouched (1 keeps reserved messages in strict order).
    assert _multiplier(WorkerSettings(urls=urls, prefetch_multiplier=1)) == 1


def test_redis_keeps_celerys_prefetch() -> None:
    urls = resolve_urls("redis://127.0.0.1:9/0")
    assert _multiplier(WorkerSettings(urls=urls, concurrency=2)) == 4
    assert _multiplier(WorkerSettings(urls=urls, prefetch_multiplier=2)) == 2
