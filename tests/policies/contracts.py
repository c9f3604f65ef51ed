# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Contracts with run policies, on the queue `policies` (no default worker consumes it)."""

from __future__ import annotations

from task_contracts import ContractCatalog, DeclaredError, Retry, contract

QUEUE = "policies"


class Flaky(DeclaredError):
    """A failure that goes away when tried again."""


class InsufficientFunds(DeclaredError):
    """The account holds less than the amount asked for."""


@contract(
    name="policies.flaky",
    queue=QUEUE,
    timeout=10,
    idempotent=True,
    retry=Retry(on=(Flaky,), attempts=3, backoff=0.5, max_delay=1.0, jitter=False),
    raises=(Flaky,),
)
def flaky(marker: str, failures: int) -> int:
    """Fail with `Flaky` on the first `failures` runs for `marker`; then return the run's number."""
    ...


@contract(
    name="policies.flaky_light",
    queue=QUEUE,
    timeout=10,
    idempotent=True,
    cpu_bound=False,
    retry=Retry(on=(Flaky,), attempts=3, backoff=0.5, max_delay=1.0, jitter=False),
    raises=(Flaky,),
)
def flaky_light(marker: str, failures: int) -> int:
    """As `policies.flaky`, served from the worker's threads (whose calls are admitted as they are handed over)."""
    ...


@contract(name="policies.withdraw", queue=QUEUE, timeout=5, raises=(InsufficientFunds,))
def withdraw(amount: int) -> int:
    """Take `amount` from an account holding 100; `InsufficientFunds` above that. Returns what is left."""
    ...


@contract(name="policies.span", queue=QUEUE, timeout=10, idempotent=True, concurrency=2)
def span(seconds: float) -> tuple[str, float, float]:
    """Sleep `seconds`; return (worker process, start, end) wall-clock times measured on the worker.

    At most 2 run at once across all workers.
    """
    ...


@contract(name="policies.tick", queue=QUEUE, timeout=5, idempotent=True, rate_limit="2/s")
def tick() -> float:
    """Return the worker's wall-clock time at the start; at most 2 per second on each worker."""
    ...


@contract(name="policies.hold", queue=QUEUE, timeout=30, idempotent=True, interruptible=True)
def hold(marker: str, seconds: float) -> int:
    """As `diagnostics.hold`, declared interruptible: `cancel()` stops it while it runs."""
    ...


@contract(name="policies.hold_steady", queue=QUEUE, timeout=30, idempotent=True)
def hold_steady(marker: str, seconds: float) -> int:
    """As `policies.hold`, not interruptible: a cancel while it runs lets it finish."""
    ...


@contract(name="policies.stamp", queue=QUEUE, timeout=5, idempotent=True)
def stamp(marker: str) -> float:
    """Record a start under `marker`; return the worker's wall-clock time at the start."""
    ...


@contract(name="policies.single", queue=QUEUE, timeout=30, idempotent=True, cpu_bound=False, concurrency=1)
def single(seconds: float) -> float:
    """Sleep `seconds` on a thread of the worker's main process; one runs at a time across all workers."""
    ...


CATALOG = ContractCatalog(flaky, flaky_light, withdraw, span, tick, hold, hold_steady, stamp, single)
