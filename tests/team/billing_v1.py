"""The billing contracts, version one: a typed `Receipt` result and a progress-reporting task."""

from __future__ import annotations

import pydantic

from task_contracts import ContractCatalog, contract


class Receipt(pydantic.BaseModel):
    """What a charge returns."""

    customer: str
    cents: int
    note: str | None = None


@contract(name="billing.charge", queue="billing", timeout=20, idempotent=True)
def charge(customer: str, cents: int) -> Receipt:
    """Charge a customer; negative cents refund."""
    raise NotImplementedError


@contract(name="billing.close_month", queue="billing", timeout=30, idempotent=True)
def close_month(customers: int) -> int:
    """Close the month for this many customers, reporting progress; return how many were closed."""
    raise NotImplementedError


CATALOG = ContractCatalog(charge, close_month)
