"""A catalog: the set of contracts one deployment agrees on, looked up by wire name."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from ._contract import Contract
from ._errors import ContractDeclarationError


class ContractCatalog:
    """An ordered, name-unique collection of contracts."""

    def __init__(self, *contracts: Contract[..., Any]) -> None:
        self._by_name: dict[str, Contract[..., Any]] = {}
        for item in contracts:
            if item.name in self._by_name:
                raise ContractDeclarationError(f"two contracts share the wire name {item.name!r}")
            self._by_name[item.name] = item

    @classmethod
    def from_modules(cls, *modules: ModuleType) -> ContractCatalog:
        """Every contract declared in these modules, in declaration order: nothing to list twice.

        A contract imported into a module from elsewhere counts once.
        """
        found: dict[int, Contract[..., Any]] = {}
        for module in modules:
            for value in vars(module).values():
                if isinstance(value, Contract):
                    found.setdefault(id(value), value)
        return cls(*found.values())

    def __iter__(self) -> Iterator[Contract[..., Any]]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Contract[..., Any] | None:
        """The contract with this wire name, or None."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def queues(self) -> list[str]:
        """Every queue named by a contract, in declaration order, without repeats."""
        return list(dict.fromkeys(item.queue for item in self))


def load_catalog(spec: str) -> ContractCatalog:
    """The `ContractCatalog` named by `module:attribute`."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError("expected MODULE:NAME")
    value = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(value, ContractCatalog):
        raise TypeError(f"{attribute} is a {type(value).__name__}, not a ContractCatalog")
    return value
