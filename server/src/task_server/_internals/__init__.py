"""Every use of a private attribute of Celery, kombu or redis-py by the worker, and nothing else.

Written against celery 5.7.0, kombu 5.7.0, py-amqp 5.4 and redis-py 8.1.0; checked at the floors the wheel
declares (celery 5.6.0, kombu 5.7.0, redis-py 6.4.0: `make test-lowest`). These names are no
public API: a minor release may rename or remove any of them. Each module lists the names it
relies on in `RELIED_ON`, and tests/server/test_internals.py fails, naming the attribute, when an
installed version lacks one. Other modules of task_server use only the thin functions and
mixins defined here, and override only public-named methods (of kombu's Redis QoS, say, also listed).

- `channel`: kombu's Redis channel and QoS (the batch pop, the unacked record, requeues);
- `backend`: Celery's Redis result backend (how a record is built and stored);
- `worker`: Celery's consumer, pool and current task;
- `amqp_frames`: py-amqp's decoding of a delivered message's properties (a hostile header);
- `amqp_reads`: py-amqp's frame reading, every frame the socket holds read in one turn of the loop;
- `amqp_acks`: kombu's py-amqp channel, sending the acks of several calls in one write;
- `event_loop`: kombu's event loop, without registrations that fail on every turn;
- `replies`: redis-py's reading of a reply, without its wrapping per call.
"""

from __future__ import annotations

import inspect
import re
from types import ModuleType

from . import amqp_acks, amqp_frames, amqp_reads, backend, channel, event_loop, prefork, replies, worker

#: (owner, attribute) pairs: a class, and a name on it or set on its instances; or a module and a name in it.
RELIED_ON: tuple[tuple[type | ModuleType, str], ...] = (
    *channel.RELIED_ON,
    *backend.RELIED_ON,
    *worker.RELIED_ON,
    *prefork.RELIED_ON,
    *amqp_frames.RELIED_ON,
    *amqp_reads.RELIED_ON,
    *amqp_acks.RELIED_ON,
    *event_loop.RELIED_ON,
    *replies.RELIED_ON,
)


def missing() -> list[str]:
    """`module.Class.attribute` of each relied-on name that the installed versions lack."""
    return [f"{_full_name(owner)}.{name}" for owner, name in RELIED_ON if not _has(owner, name)]


def _full_name(owner: type | ModuleType) -> str:
    return owner.__name__ if isinstance(owner, ModuleType) else f"{owner.__module__}.{owner.__qualname__}"


def _has(owner: type | ModuleType, name: str) -> bool:
    """A class attribute, or an instance attribute assigned (`self.name = ...`) in the class or a
    base; a module's own name."""
    if hasattr(owner, name):
        return True
    if isinstance(owner, ModuleType):
        return False
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=]*)?=")
    for klass in owner.__mro__:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if assigned.search(source):
            return True
    return False
