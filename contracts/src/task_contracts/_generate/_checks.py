"""The checks of what a language's types cannot say (bounds, lengths, patterns, literals), as rules
that each language's generator writes in its own syntax."""

from __future__ import annotations

import json
from typing import Any

#: JSON Schema keyword -> (comparison that FAILS the check, the rule as the problem states it).
BOUNDS = {
    "minimum": ("<", "must be >= {}"),
    "maximum": (">", "must be <= {}"),
    "exclusiveMinimum": ("<=", "must be > {}"),
    "exclusiveMaximum": (">=", "must be < {}"),
}
LENGTHS = {
    "minLength": ("<", "must have at least {} characters"),
    "maxLength": (">", "must have at most {} characters"),
}
ITEMS = {"minItems": ("<", "must have at least {} items"), "maxItems": (">", "must have at most {} items")}


def number_text(value: Any) -> str:
    """A bound as every target language writes it: `0`, `2.5`."""
    return json.dumps(value)


def one_of_rule(values: list[Any]) -> str:
    return "must be one of " + ", ".join(json.dumps(value) for value in values)


def enum_values(constraints: tuple[tuple[str, Any], ...]) -> list[Any] | None:
    for key, value in constraints:
        if key == "enum":
            return list(value)
        if key == "const":
            return [value]
    return None
