"""Publishing workflows through Celery's canvas (chain, group, chord), with bounded failure.

The workers run the workflow: a chain's later links travel inside the first message and each
worker publishes the next one; a chord's callback is published by the worker that finishes the
last header task (Redis counts the parts, `on_chord_part_return`). The client only publishes.

Celery's canvas needs a result backend on the publishing side for chords: it stores the chord's
size in Redis (`set_chord_size`) before the header is sent. So this app has Celery's Redis result
backend, bounded like the client's own connections and never subscribing to results: results are
read by `ResultWatcher` as for every call.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend, SentinelBackend

from task_contracts import celery_url, redact_url

from ._errors import BrokerUnavailable
from ._pools import BoundedPool, BoundedSentinel
from ._producer import BROKER_ERRORS, publishing_app
from ._reasons import connection_failure
from ._settings import ClientSettings


class _PublishOnly:
    """Celery's Redis backend that never subscribes to or tracks a task's result: it only stores chord sizes.

    The canvas makes `AsyncResult` objects for what it sends; with Celery's own result consumer each
    would subscribe when made and unsubscribe when collected, even after the client closed.
    """

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app=app, url=url or app.conf.result_backend, connection_pool=BoundedPool, **kwargs)  # type: ignore[call-arg]
        # How long a command waits for a free connection (`ClientSettings.pool_timeout`), as the
        # client's own pools do, rather than fail at once at `redis_max_connections`.
        self.connparams["timeout"] = app.conf.redis_socket_connect_timeout + app.conf.redis_socket_timeout  # type: ignore[attr-defined]

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def add_pending_result(self, result: Any, *args: Any, **kwargs: Any) -> Any:
        return result

    def remove_pending_result(self, result: Any) -> Any:
        return result

    def on_result_fulfilled(self, result: Any) -> None:
        return None


class PublishOnlyBackend(_PublishOnly, RedisBackend):  # type: ignore[misc]
    """For `redis://` and `rediss://` result backends."""


class PublishOnlySentinelBackend(_PublishOnly, SentinelBackend):  # type: ignore[misc]
    """For `sentinel://` result backends."""

    #: Where Celery's Sentinel backend finds `Sentinel`: its master pools wait for a connection too.
    sentinel = SimpleNamespace(Sentinel=BoundedSentinel)


def publish_only_backend(url: str) -> str:
    """The backend class as `module:Class`, the form every supported Celery takes as `app.backend_cls`
    (Celery 5.6.0's `by_url` fails on a class: `argument of type 'type' is not iterable`)."""
    chosen = PublishOnlySentinelBackend if url.startswith("sentinel:") else PublishOnlyBackend
    return f"{chosen.__module__}:{chosen.__qualname__}"


class CanvasPublisher:
    """A private Celery app (never the current app) that publishes canvas workflows by wire name."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._broker = redact_url(settings.urls.broker_url)
        self._lock = threading.Lock()
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    def publish(self, canvas: Any, *, what: str) -> None:
        """`canvas.apply_async()`; `BrokerUnavailable` (URL without password) on any broker or backend failure."""
        try:
            canvas.apply_async()
        except BROKER_ERRORS as error:
            raise BrokerUnavailable(
                f"broker {self._broker} is unavailable while publishing {what} "
                f"(some links may have been sent): {connection_failure(error, self.settings)}",
                url=self._broker,
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()

    def _build(self) -> Celery:
        settings = self.settings
        app = publishing_app("task_client_workflows", settings)
        backend = celery_url(settings.urls.result_backend)
        app.backend_cls = publish_only_backend(settings.urls.result_backend)
        app.conf.update(
            result_backend=backend.url,
            redis_socket_connect_timeout=settings.connect_timeout,
            redis_socket_timeout=settings.socket_timeout,
            redis_max_connections=settings.max_connections,
            # One attempt: Celery's backend would otherwise retry for ~19 s.
            result_backend_transport_options={**backend.transport_options, "retry_policy": {"max_retries": 0}},
        )
        return app
