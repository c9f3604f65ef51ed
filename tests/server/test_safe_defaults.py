"""The worker app's defaults are the safe ones: JSON only, and reconnecting for as long as it takes."""

from __future__ import annotations

from task_contracts import resolve_urls
from task_server import WorkerSettings, create_app

URL = "redis://alice:s3cret-worker@127.0.0.1:9/0"


def test_the_worker_accepts_and_stores_json_only() -> None:
    app = create_app(WorkerSettings(urls=resolve_urls(URL)))
    assert app.conf.accept_content == ["json"]
    assert app.conf.result_accept_content == ["json"]
    assert app.conf.task_serializer == "json" and app.conf.result_serializer == "json"


def test_the_worker_reconnects_to_the_broker_without_a_limit() -> None:
    app = create_app(WorkerSettings(urls=resolve_urls(URL)))
    assert app.conf.broker_connection_retry is True
    assert app.conf.broker_connection_retry_on_startup is True
    assert app.conf.broker_connection_max_retries is None  # Celery's default gives up after 100 tries


def test_worker_settings_never_show_the_password() -> None:
    settings = WorkerSettings(urls=resolve_urls(URL))
    assert "s3cret-worker" not in repr(settings)
    assert "alice:***@" in repr(settings)
