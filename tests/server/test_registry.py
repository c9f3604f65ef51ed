from __future__ import annotations

import pytest

from task_contracts import CATALOG, ContractCatalog, contract, math
from task_server import ImplementationError, discover, implements, signature_differences, verify


def test_shipped_implementations_match_every_contract() -> None:
    found = verify(CATALOG, discover(["task_server.tasks"]))
    assert sorted(found) == sorted(CATALOG.names())
    assert found["math.add"](4, 7) == 11


def test_missing_implementation_is_named() -> None:
    @implements(math.add)
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ImplementationError) as caught:
        verify(ContractCatalog(math.add, math.mul), [add])
    assert caught.value.problems == ["math.mul: no implementation"]


def test_double_implementation_is_named() -> None:
    first = implements(math.add)(lambda x, y: x + y)
    second = implements(math.add)(lambda x, y: x + y)
    with pytest.raises(ImplementationError, match="math.add: implemented more than once"):
        verify(ContractCatalog(math.add), [first, second])


def test_implementation_outside_the_catalog_is_named() -> None:
    @contract(name="extra.task")
    def extra() -> int: ...

    stray = implements(extra)(lambda: 1)
    with pytest.raises(ImplementationError, match="extra.task: implemented by .* but not in the contract catalog"):
        verify(ContractCatalog(), [stray])


def test_signature_differences_name_each_difference() -> None:
    def wrong(x: int, y: str = "a") -> float:
        return 0.0

    assert signature_differences(math.add, wrong) == [
        "parameter 'y' is str in the implementation, int in the contract",
        "parameter 'y' defaults to 'a' in the implementation, no default in the contract",
        "result is float in the implementation, int in the contract",
    ]

    def renamed(a: int, y: int) -> int:
        return a + y

    assert signature_differences(math.add, renamed) == [
        "parameters are (a, y) in the implementation, (x, y) in the contract"
    ]

    def untyped(x, y):  # type: ignore[no-untyped-def]
        return x + y

    assert "parameter 'x' is unannotated in the implementation, int in the contract" in signature_differences(
        math.add, untyped
    )
