"""A remote-control command: a worker tells which contracts it serves, and on which queues.

Clients ask with `app.control.broadcast("task_contracts", reply=True)`; each worker answers
`{"contracts": {wire name: {"fingerprint", "queue", "name", "version", "shape"}}, "queues": [...]}`,
where `name` is the declared name shared by every major version, `version` the major version and
`shape` what `Contract.served_shape()` gives, so that a client can tell a compatible difference
from a breaking one.
"""

from __future__ import annotations

import weakref
from typing import Any

from celery import Celery
from celery.worker.control import control_command

from task_contracts import Contract
from task_contracts.wire import CONTROL_CONTRACTS

_SERVED: weakref.WeakKeyDictionary[Celery, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def announce(app: Celery, contracts: list[Contract[..., Any]]) -> None:
    """Record the contracts `app` serves, for the control command to report."""
    _SERVED[app] = {
        item.name: {
            "fingerprint": item.fingerprint,
            "queue": item.queue,
            "name": item.base_name,
            "version": item.version,
            "shape": item.served_shape(),
        }
        for item in contracts
    }


@control_command(name=CONTROL_CONTRACTS)  # type: ignore[untyped-decorator]
def report_contracts(state: Any, **kwargs: Any) -> dict[str, Any]:
    """Reply with the contracts this worker implements and the queues it consumes."""
    consumer = state.consumer
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = sorted(queue.name for queue in task_consumer.queues) if task_consumer is not None else []
    return {"contracts": _SERVED.get(consumer.app, {}), "queues": queues}
