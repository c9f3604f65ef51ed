"""The billing team's typed client, both faces, as docs/client.md shows; no demo contracts."""

from __future__ import annotations

from task_client import AsyncCatalogClient, CatalogClient, remote

from . import billing_v1, billing_v2


class Billing:
    charge = remote(billing_v1.charge)
    close_month = remote(billing_v1.close_month)


class AsyncBillingClient(Billing, AsyncCatalogClient): ...


class BillingClient(Billing, CatalogClient[AsyncBillingClient]): ...


class BillingV2:  # the clients-first rollout: the new optional parameter
    charge = remote(billing_v2.charge)
    close_month = remote(billing_v1.close_month)  # unchanged in version two


class AsyncBillingClientV2(BillingV2, AsyncCatalogClient): ...


class BillingClientV2(BillingV2, CatalogClient[AsyncBillingClientV2]): ...
