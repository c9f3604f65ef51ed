"""A team's own client: its `remote(...)` attributes on both faces, and none of the demo catalog's."""

from __future__ import annotations

import pytest

from task_client import AsyncCatalogClient, AsyncRemoteTask, CatalogClient, RemoteTask, TaskClient, UnknownTask, remote
from task_contracts import CATALOG, math

UNREACHABLE = "redis://127.0.0.1:9/0"  # nothing is published: no server needed


class Billing:
    plus = remote(math.add)


class AsyncBillingClient(Billing, AsyncCatalogClient): ...


class BillingClient(Billing, CatalogClient[AsyncBillingClient]): ...


class UnlinkedBillingClient(Billing, CatalogClient): ...


DEMO_ATTRIBUTES = ("add", "mul", "xsum", "div", "stats", "count_to")


@pytest.mark.parametrize("client_class", [BillingClient, UnlinkedBillingClient])
def test_client_aio_holds_the_team_attributes_as_async_tasks(client_class: type[CatalogClient]) -> None:
    with client_class(UNREACHABLE) as client:
        assert isinstance(client.plus, RemoteTask)
        assert isinstance(client.aio.plus, AsyncRemoteTask)  # type: ignore[attr-defined]
        assert client.aio.plus.contract is math.add  # type: ignore[attr-defined]


def test_the_named_async_class_is_the_one_client_aio_returns() -> None:
    with BillingClient(UNREACHABLE) as client:
        assert type(client.aio) is AsyncBillingClient


@pytest.mark.parametrize("client_class", [BillingClient, AsyncBillingClient, UnlinkedBillingClient])
def test_a_team_client_has_no_demo_attributes_and_only_its_own_catalog(client_class: type) -> None:
    client = client_class(UNREACHABLE)
    try:
        faces = [client] if isinstance(client, AsyncCatalogClient) else [client, client.aio]
        for face in faces:
            assert [name for name in DEMO_ATTRIBUTES if hasattr(face, name)] == []
            assert face.catalog.names() == ["math.add"]
            with pytest.raises(UnknownTask, match="known: math.add$"):
                face.task_by_name("math.mul")
    finally:
        if isinstance(client, CatalogClient):
            client.close()


def test_the_demo_client_keeps_the_demo_catalog() -> None:
    with TaskClient(UNREACHABLE) as client:
        assert client.catalog is CATALOG
        assert client.aio.catalog is CATALOG
        assert isinstance(client.aio.count_to, AsyncRemoteTask)


def test_a_type_argument_that_is_no_async_client_is_refused() -> None:
    with pytest.raises(TypeError, match="expected an AsyncCatalogClient subclass"):

        class Wrong(CatalogClient[TaskClient]):  # type: ignore[type-var]
            ...
