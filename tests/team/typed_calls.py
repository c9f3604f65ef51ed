"""Calls a type checker must accept (and two it must refuse), checked by mypy --strict."""

from __future__ import annotations

from .billing_v1 import Receipt
from .client import BillingClient


async def calls(client: BillingClient) -> None:
    sync_receipt: Receipt = client.charge("cust-1", 500)
    async_receipt: Receipt = await client.aio.charge("cust-1", 500)
    months: list[int] = await client.aio.close_month.map([(3,)])
    assert sync_receipt.cents == async_receipt.cents == months[0]
    client.add(4, 7)  # type: ignore[attr-defined]  # no demo contracts on a team's client
    await client.aio.charge("cust-1", "500")  # type: ignore[arg-type]
