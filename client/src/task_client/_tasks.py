"""Typed per-contract client attributes, declared once for both faces: `add = remote(math.add)`.

`remote(contract)` on a `CatalogClient` gives a `RemoteTask`, on an `AsyncCatalogClient` an
`AsyncRemoteTask`, both with the contract's signature. A team declares its catalog once, for both faces:

    class Billing:
        charge = remote(billing.charge)

    class AsyncBillingClient(Billing, AsyncCatalogClient): ...
    class BillingClient(Billing, CatalogClient[AsyncBillingClient]): ...   # .aio is an AsyncBillingClient

`DemoTasks` is the demo catalog's set, on `TaskClient` and `AsyncTaskClient` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from task_contracts import Contract, math, reports

if TYPE_CHECKING:
    from ._client import AsyncCatalogClient, CatalogClient
    from ._remote import AsyncRemoteTask, RemoteTask

P = ParamSpec("P")
R = TypeVar("R")


class remote(Generic[P, R]):  # lower case: used like a function in class bodies, as `property` is
    """A client attribute that gives each client its typed remote task for `contract`."""

    __slots__ = ("_attribute", "contract")

    def __init__(self, contract: Contract[P, R]) -> None:
        self.contract = contract
        self._attribute = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._attribute = name

    def __repr__(self) -> str:
        return f"remote({self.contract.name})"

    @overload
    def __get__(self, client: None, owner: type[Any]) -> remote[P, R]: ...
    @overload
    def __get__(self, client: CatalogClient[Any], owner: type[Any]) -> RemoteTask[P, R]: ...
    @overload
    def __get__(self, client: AsyncCatalogClient, owner: type[Any]) -> AsyncRemoteTask[P, R]: ...
    def __get__(
        self, client: CatalogClient[Any] | AsyncCatalogClient | None, owner: type[Any]
    ) -> remote[P, R] | RemoteTask[P, R] | AsyncRemoteTask[P, R]:
        if client is None:
            return self
        task = client.task(self.contract)
        # Cached on the instance: later reads are a plain attribute lookup (as functools.cached_property).
        vars(client)[self._attribute] = task
        return task


class DemoTasks:
    """The contracts of the demo catalog, as attributes of `TaskClient` and `AsyncTaskClient`. One line each."""

    add = remote(math.add)
    mul = remote(math.mul)
    xsum = remote(math.xsum)
    div = remote(math.div)
    stats = remote(math.stats)
    count_to = remote(reports.count_to)
