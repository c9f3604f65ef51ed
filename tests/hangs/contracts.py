# Contract stubs have no body by design.
# mypy: disable-error-code="empty-body"
"""Contracts of a team that calls slow services: light ones served from threads, one from a process."""

from __future__ import annotations

from task_contracts import ContractCatalog, contract

QUEUE = "ops"
#: Prefix of a key whose lookup hangs: `hang:<marker>` waits until the marker is released.
HANGING_KEY = "hang:"
#: The longest any call here waits for its release (a safety net: tests release every marker).
HANG_LIMIT = 120.0


@contract(name="ops.lookup", queue=QUEUE, timeout=3, idempotent=True, cpu_bound=False)
def lookup(key: str) -> str:
    """Return `value-of-<key>` at once; a key `hang:<marker>` hangs like a network read without a timeout."""
    ...


@contract(name="ops.ping", queue=QUEUE, timeout=5, idempotent=True, cpu_bound=False)
def ping() -> str:
    """Return "pong": another contract, whose calls must not wait for a hung lookup."""
    ...


@contract(name="ops.crunch", queue=QUEUE, timeout=2, idempotent=True)
def crunch(key: str) -> str:
    """As `ops.lookup`, CPU-bound (served by a pool process, killed at its 2 s hard time limit)."""
    ...


@contract(name="ops.size", queue=QUEUE, timeout=5, idempotent=True)
def size(text: str) -> int:
    """Return the length of `text`: another CPU-bound contract, served by the pool processes."""
    ...


CATALOG = ContractCatalog(lookup, ping, crunch, size)
