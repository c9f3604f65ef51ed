"""Redelivery after a crash: every start of a task is counted per task id, and the contract's
idempotency decides what a second start does.

Every contract task is acknowledged late (after it finished) and requeued when its pool process
dies, so a message is never lost with a worker. Whether it may run again is the contract's call:

- idempotent: it runs again, up to `max_deliveries` starts; the next one stores
  `DeliveryLimitExceeded` instead of running (a message that kills its worker every time
  must not take the fleet down one worker at a time);
- not idempotent: it never starts twice; a second start stores `OutcomeUnknown`, which reaches
  the waiting client as its own error type (the first start may or may not have taken effect).

A message whose worker was killed as a whole (no process left to requeue it) waits in kombu's
unacked set until `visibility_timeout` has passed, then any running worker puts it back on its
queue; the sweep runs every `unacked_restore_interval` seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.utils.dispatch import Signal

from task_contracts import Contract, ContractCatalog

from ._errors import DeliveryLimitExceeded, OutcomeUnknown

DEFAULT_VISIBILITY_TIMEOUT = 300.0
DEFAULT_MAX_DELIVERIES = 3
# Bounds a counter whose task never finishes; a finished task's counter is deleted with the
# storing of its record (`_backend`), so a redelivery comes well before this.
COUNT_TTL_SECONDS = 86_400

logger = logging.getLogger(__name__)

#: Sent (sender: the task) when an idempotent task starts again after its worker was lost.
task_redelivered = Signal(name="task_redelivered", providing_args={"starts"})


def judge(
    task: Task,
    contract: Contract[..., Any],
    task_id: str,
    starts: int | None,
    max_deliveries: int,
    unrecorded: BaseException | None = None,
) -> None:
    """Raise `OutcomeUnknown` or `DeliveryLimitExceeded` when this start (number `starts`, counted by
    `_admission`) must not run; `starts` is None when it could not be recorded (`unrecorded` says why).
    """
    if starts is None:
        if not contract.idempotent:
            raise RuntimeError(
                f"{contract.name} {task_id}: its start could not be recorded ({unrecorded}), "
                "so it was not run (not idempotent: it must never start twice)"
            ) from None
        logger.warning("%s[%s]: start not counted (%s); idempotent, so run anyway", contract.name, task_id, unrecorded)
        return
    if starts == 1:
        return
    if not contract.idempotent:
        raise OutcomeUnknown(
            f"{contract.name} {task_id} was started before and its worker was lost before it finished; "
            "the contract is not idempotent, so it is not run again: it may or may not have taken effect"
        )
    if starts > max_deliveries:
        raise DeliveryLimitExceeded(
            f"{contract.name} {task_id} was started {starts - 1} times and each time its worker was lost; "
            f"not started again (at most {max_deliveries} starts, see --max-deliveries)"
        )
    logger.warning(
        "%s[%s]: start %d of at most %d after its worker was lost (idempotent: run again)",
        contract.name,
        task_id,
        starts,
        max_deliveries,
    )
    task_redelivered.send(sender=task, starts=starts)


def transport_options(visibility_timeout: float) -> dict[str, float]:
    """kombu Redis options so a killed worker's messages come back after `visibility_timeout`.

    kombu's defaults sweep every 10 s x 10 (about 100 s) and wait an hour.
    """
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1.0, min(10.0, visibility_timeout / 5)),
        "unacked_restore_throttle": 1,
    }


def redelivery_warnings(visibility_timeout: float, catalog: ContractCatalog) -> list[str]:
    """Contracts whose bound reaches the visibility timeout: a slow start may be delivered twice."""
    return [
        f"visibility timeout {visibility_timeout:g} s is not longer than {item.name}'s bound ({item.timeout:g} s): "
        "a task still running then is delivered again (idempotent) or reported OutcomeUnknown (not idempotent)"
        for item in catalog
        if item.timeout >= visibility_timeout
    ]


def lifetime_warnings(visibility_timeout: float, result_ttls: dict[str, float], catalog: ContractCatalog) -> list[str]:
    """Non-idempotent contracts whose records expire before a lost worker's message comes back.

    A redelivery finds the call finished by its record (the start counter is gone by then); once
    the record has expired, the call would be started again.
    """
    return [
        f"{item.name} is not idempotent and its records are kept {result_ttls[item.name]:g} s, less than the "
        f"visibility timeout ({visibility_timeout:g} s): a call redelivered after that could run twice"
        for item in catalog
        if not item.idempotent and result_ttls.get(item.name, visibility_timeout) < visibility_timeout
    ]
