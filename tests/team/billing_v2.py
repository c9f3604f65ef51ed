"""The billing contracts, version two: `charge` gains an optional `note` (compatible, as
`task-contracts diff` classifies it); `close_month` is unchanged."""

from __future__ import annotations

from task_contracts import ContractCatalog, contract

from .billing_v1 import Receipt, close_month


@contract(name="billing.charge", queue="billing", timeout=20, idempotent=True)
def charge(customer: str, cents: int, note: str | None = None) -> Receipt:
    """Charge a customer; negative cents refund."""  # unchanged: `diff` reports the new parameter alone
    raise NotImplementedError


CATALOG = ContractCatalog(charge, close_month)
