"""Implementations of contracts: declared with `implements`, found by module, verified against the catalog."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, ParamSpec, TypeVar

from task_contracts import Contract, ContractCatalog

from ._errors import ImplementationError

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Implementation(Generic[P, R]):
    """A function that implements a contract. Calling it calls the function."""

    contract: Contract[P, R]
    function: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    @property
    def origin(self) -> str:
        return f"{self.function.__module__}.{self.function.__qualname__}"


def implements(contract: Contract[P, R]) -> Callable[[Callable[P, R]], Implementation[P, R]]:
    """Mark a function as the implementation of `contract`.

    >>> @implements(math.add)
    ... def add(x: int, y: int) -> int:
    ...     return x + y
    """

    def mark(function: Callable[P, R]) -> Implementation[P, R]:
        return Implementation(contract, function)

    return mark


def discover(module_names: Iterable[str]) -> list[Implementation[..., Any]]:
    """Every `Implementation` defined in these modules, and in their submodules for packages."""
    found: dict[int, Implementation[..., Any]] = {}
    for name in module_names:
        for module in _walk(importlib.import_module(name)):
            for value in vars(module).values():
                if isinstance(value, Implementation):
                    found.setdefault(id(value), value)
    return list(found.values())


def _walk(module: ModuleType) -> Iterable[ModuleType]:
    yield module
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=module.__name__ + "."):
        yield importlib.import_module(info.name)


def verify(
    catalog: ContractCatalog, implementations: Iterable[Implementation[..., Any]]
) -> dict[str, Implementation[..., Any]]:
    """Map each wire name to its one implementation, or raise `ImplementationError` naming every problem."""
    by_name: dict[str, list[Implementation[..., Any]]] = {}
    for item in implementations:
        by_name.setdefault(item.contract.name, []).append(item)
    problems: list[str] = []
    for name, items in by_name.items():
        if name not in catalog:
            problems.append(f"{name}: implemented by {items[0].origin} but not in the contract catalog")
    for declared in catalog:
        items = by_name.get(declared.name, [])
        if not items:
            problems.append(f"{declared.name}: no implementation")
        elif len(items) > 1:
            origins = ", ".join(item.origin for item in items)
            problems.append(f"{declared.name}: implemented more than once ({origins})")
        else:
            problems.extend(
                f"{declared.name}: {difference}" for difference in signature_differences(declared, items[0].function)
            )
            if items[0].contract is not declared and items[0].contract.fingerprint != declared.fingerprint:
                problems.append(f"{declared.name}: implements another declaration of the contract")
    if problems:
        raise ImplementationError(problems)
    return {name: items[0] for name, items in by_name.items()}


def signature_differences(declared: Contract[..., Any], function: Callable[..., Any]) -> list[str]:
    """How `function`'s signature differs from the contract's, one line per difference."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except NameError as error:
        return [f"cannot resolve the implementation's annotations: {error}"]
    actual = list(inspect.signature(function).parameters.values())
    expected = list(declared.parameters)
    differences = []
    expected_names = [p.name for p in expected]
    actual_names = [p.name for p in actual]
    if expected_names != actual_names:
        differences.append(
            f"parameters are ({', '.join(actual_names)}) in the implementation, "
            f"({', '.join(expected_names)}) in the contract"
        )
    for want, have in zip(expected, actual, strict=False):
        if want.name != have.name:
            continue
        have_type = hints.get(have.name, inspect.Parameter.empty)
        if have_type != want.annotation:
            differences.append(
                f"parameter {want.name!r} is {_show(have_type)} in the implementation, "
                f"{_show(want.annotation)} in the contract"
            )
        if have.kind != want.kind:
            differences.append(
                f"parameter {want.name!r} is {have.kind.description} in the implementation, "
                f"{want.kind.description} in the contract"
            )
        if have.default != want.default:
            differences.append(
                f"parameter {want.name!r} defaults to {_show_default(have.default)} in the implementation, "
                f"{_show_default(want.default)} in the contract"
            )
    have_result = hints.get("return", inspect.Signature.empty)
    if have_result != declared.result_type:
        differences.append(
            f"result is {_show(have_result)} in the implementation, {_show(declared.result_type)} in the contract"
        )
    return differences


def _show(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "unannotated"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _show_default(value: Any) -> str:
    return "no default" if value is inspect.Parameter.empty else repr(value)
