"""JSON Schemas derived from contracts: standalone (draft 2020-12) and AsyncAPI-embedded (draft-07)."""

from __future__ import annotations

import copy
from typing import Any

from ._contract import Contract

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
JsonSchema = dict[str, Any]


def arguments_document(contract: Contract[..., Any]) -> JsonSchema:
    """The arguments schema as a standalone JSON Schema document (an object keyed by parameter name)."""
    return _standalone(contract.arguments_schema(), f"{contract.name} arguments", contract)


def result_document(contract: Contract[..., Any]) -> JsonSchema:
    """The result schema as a standalone JSON Schema document."""
    return _standalone(contract.result_schema(), f"{contract.name} result", contract)


def _standalone(schema: JsonSchema, title: str, contract: Contract[..., Any]) -> JsonSchema:
    document = {"$schema": JSON_SCHEMA_DIALECT, **schema}
    document["title"] = title
    if contract.description and "description" not in document:
        document["description"] = contract.description
    return document


class Draft07Converter:
    """Rewrites pydantic's draft 2020-12 output into the draft-07 form AsyncAPI 3.0 schemas use.

    `$defs` move into `components.schemas` under `<contract>.<Name>` (so two contracts never
    collide), and tuple forms (`prefixItems`/`items`) become `items`/`additionalItems`.
    """

    def __init__(self, components: dict[str, JsonSchema]) -> None:
        self.components = components

    def convert(self, schema: JsonSchema, prefix: str) -> JsonSchema:
        schema = copy.deepcopy(schema)
        for name, definition in schema.pop("$defs", {}).items():
            self.components[f"{prefix}.{name}"] = self._rewrite(definition, prefix)
        result: JsonSchema = self._rewrite(schema, prefix)
        return result

    def _rewrite(self, node: Any, prefix: str) -> Any:
        if isinstance(node, list):
            return [self._rewrite(item, prefix) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: self._rewrite(value, prefix) for key, value in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = f"#/components/schemas/{prefix}.{ref.removeprefix('#/$defs/')}"
        if "prefixItems" in out:
            rest = out.pop("items", False)
            out["items"] = out.pop("prefixItems")
            out["additionalItems"] = rest
        return out
