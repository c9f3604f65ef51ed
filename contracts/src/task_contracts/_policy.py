"""How a contract's calls are run, declared beside its signature: retries, declared errors and limits.

The worker applies these; the client reads `raises` to give declared errors back by type. None of
them changes the wire signature, so none is part of the fingerprint.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import ContractDeclarationError, ContractError

# Celery's rate-limit syntax: tasks per second, or per second/minute/hour ("10/s", "100/m", "5").
_RATE_LIMIT = re.compile(r"^[0-9]+(\.[0-9]+)?(/[smh])?$")


class DeclaredError(ContractError):
    """Base of the errors a contract declares it may raise (`@contract(..., raises=(...,))`).

    Define subclasses in the contracts package, next to the contracts that raise them. The worker
    stores one by its class name; the client raises a class that is both this type and
    `task_client.TaskFailed`, so callers catch it by type and retry policies can name it.
    A declared error carries a message only: subclasses keep this constructor.

    >>> class InsufficientFunds(DeclaredError):
    ...     "The account holds less than the amount asked for."
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Retry:
    """A retry policy, applied by the worker (Celery's `Task.retry`) to idempotent contracts only.

    `on`: exception types that cause a retry (declared errors or standard ones such as
    `ConnectionError`); `attempts`: runs in all, the first included; before retry n (1, 2, ...)
    the worker waits `backoff * 2 ** (n - 1)` seconds, at most `max_delay`, and with `jitter`
    a random delay between zero and that (AWS "full jitter", as Celery's `retry_jitter`).

    >>> Retry(on=(ConnectionError,), attempts=5, backoff=1.0, max_delay=30.0)
    """

    on: tuple[type[BaseException], ...]
    attempts: int = 3
    backoff: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        object.__setattr__(self, "on", on)
        if not on or not all(isinstance(item, type) and issubclass(item, Exception) for item in on):
            raise ContractDeclarationError(f"Retry(on=...) takes exception classes, got {self.on!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 2:
            raise ContractDeclarationError(
                f"Retry(attempts=...) is the number of runs in all, at least 2, got {self.attempts!r}"
            )
        if not (isinstance(self.backoff, int | float) and self.backoff >= 0):
            raise ContractDeclarationError(f"Retry(backoff=...) is seconds, zero or more, got {self.backoff!r}")
        if not (isinstance(self.max_delay, int | float) and self.max_delay >= 0):
            raise ContractDeclarationError(f"Retry(max_delay=...) is seconds, zero or more, got {self.max_delay!r}")

    def applies_to(self, error: BaseException) -> bool:
        return isinstance(error, self.on)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the second run)."""
        ceiling = min(self.max_delay, self.backoff * 2 ** (retry - 1))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    def summary(self) -> dict[str, Any]:
        return {
            "on": [item.__name__ for item in self.on],
            "attempts": self.attempts,
            "backoff": self.backoff,
            "max_delay": self.max_delay,
            "jitter": self.jitter,
        }


def policy_problems(
    name: str,
    *,
    idempotent: bool,
    retry: Retry | None,
    raises: Sequence[type[DeclaredError]],
    rate_limit: str | None,
    concurrency: int | None,
) -> list[str]:
    """What is wrong with a contract's run policies, one line each (empty when all is well)."""
    problems = []
    if retry is not None and not isinstance(retry, Retry):
        problems.append(f"retry must be a Retry(...), got {retry!r}")
    elif retry is not None and not idempotent:
        problems.append("a retry policy runs the task again, so the contract must be declared idempotent=True")
    seen: set[str] = set()
    for item in raises:
        if not (isinstance(item, type) and issubclass(item, DeclaredError)) or item is DeclaredError:
            problems.append(f"raises: {item!r} is not a subclass of task_contracts.DeclaredError")
            continue
        if item.__init__ is not DeclaredError.__init__:
            problems.append(
                f"raises: {item.__name__} must not override __init__: a declared error carries a message only"
            )
        if item.__name__ in seen:
            problems.append(f"raises: two declared errors are named {item.__name__}; they travel by name")
        seen.add(item.__name__)
    if rate_limit is not None and not (isinstance(rate_limit, str) and _RATE_LIMIT.match(rate_limit)):
        problems.append(f"rate_limit {rate_limit!r} is not like '10/s', '100/m' or '1000/h'")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        problems.append(f"concurrency must be a positive int (runs at once across all workers), got {concurrency!r}")
    return problems
