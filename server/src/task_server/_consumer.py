"""The worker's consumer: Celery's, with a net under the handling of every task message.

Celery's handler lets through whatever its checks do not expect: a `task` header that is a list
raised `TypeError` out of it, after the message had been delivered and counted against the
prefetch window, and it was never acknowledged (a few such messages and the worker stopped
consuming; on RabbitMQ the error stops the worker). The messages Celery does discard itself (no
`task` in a v1 body, an invalid task, an undecodable body) got no record, though they may carry a
readable task id. Here every such message is acknowledged, logged and, when it names a task id,
refused with a stored `RefusedMessage` (`_refusals`), and the worker goes on consuming.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from ._internals.event_loop import quiet_remove_writer
from ._internals.worker import keep_current_tasks_per_thread, write_results_plainly
from ._refusals import identity, refuse
from ._signal_wakeup import wake_on_signals
from ._threads import served_by_threads
from ._unacked import flush_held

#: Dotted path given as Celery's `worker_consumer` setting.
WORKER_CONSUMER = f"{__name__}:GuardedConsumer"

logger = logging.getLogger(__name__)


class GuardedConsumer(Consumer):  # type: ignore[misc]
    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            headers = message.headers
            if isinstance(headers, dict) and not isinstance(headers.get("task", ""), str):
                self._refuse(message, f"header 'task' must be a string, not {headers['task']!r:.80}")
                return None
            if not isinstance(headers, dict) or headers.get("task") not in served_by_threads:
                flush_held()  # its unacked entry is in Redis before it is handed on (`_unacked`)
            try:
                return handle(message)
            except self.connection_errors:
                raise  # the broker is lost (its unacked entry could not be written): Celery reconnects
            except Exception as error:  # anything: one message must not stop the consumer
                logger.exception("handling a task message failed")
                self._refuse(message, f"the worker could not read this message ({type(error).__name__}: {error})")
                return None
            finally:
                flush_held()

        return on_task_received

    def register_with_event_loop(self, hub: Any) -> None:
        super().register_with_event_loop(hub)
        wake_on_signals(hub)  # a SIGTERM stops the worker at once, not on the loop's next turn
        quiet_remove_writer(hub)  # no failing unregistration of idle pool pipes on every turn
        # Less of Celery's tracer work per call run in this process, the same outcome (see each).
        keep_current_tasks_per_thread()
        write_results_plainly()

    def connect(self) -> Any:
        connection = super().connect()
        # The Redis transport refuses an envelope kombu cannot turn into a message through this
        # (`_transport`): by then there is no message to hand to Celery's handler.
        connection.refuse_envelope = self.refuse_envelope
        return connection

    def refuse_envelope(self, envelope: Any, problem: str) -> None:
        """Log, and record if it names a task id, the refusal of a popped queue item that never became a message."""
        name, task_id, reply_to = identity(envelope.get("headers"), envelope.get("properties"))
        if not isinstance(task_id, str):
            logger.error("dropped an item on a task queue that is not a Celery message envelope: %s", problem)
            return
        refuse(self.app, _sender(self.app, name), name, task_id, problem, reply_to)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        super().on_unknown_message(body, message)
        self._record(message, body, "message names no task (neither a `task` header nor a protocol-v1 body)")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_invalid_task(body, message, exc)
        self._record(message, body, f"invalid task message: {exc}")

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        self._record(message, None, f"message body could not be decoded: {exc}")

    def _refuse(self, message: Any, problem: str) -> None:
        if not message.acknowledged:
            message.ack_log_error(logger, self.connection_errors)
        self._record(message, None, problem)

    def _record(self, message: Any, payload: Any, problem: str) -> None:
        try:
            if payload is None and "id" not in (message.headers if isinstance(message.headers, dict) else {}):
                payload = _decoded(message)  # protocol v1: the id is in the body
            name, task_id, reply_to = identity(message.headers, message.properties, payload)
            refuse(self.app, _sender(self.app, name), name, task_id, problem, reply_to)
        except Exception:
            logger.exception("recording the refusal of a message failed")


def _decoded(message: Any) -> Any:
    try:
        return message.payload  # kombu decodes it under the worker's accepted content types
    except Exception:
        return None


def _sender(app: Any, name: Any) -> Any:
    """The task a refused message names, when this worker has it (the metrics count refusals per task)."""
    return app.tasks.get(name, name) if isinstance(name, str) else name
