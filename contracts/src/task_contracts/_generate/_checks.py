"""The checks of what a language's types cannot say (bounds, lengths, patterns, literals), as rules
that each language's generator writes in its own syntax."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def comparisons(
    constraints: tuple[tuple[str, Any], ...], value: str, length: str, count: str
) -> Iterator[tuple[str, str]]:
    """(the condition that fails, the rule it breaks) for each bound, length and item count among
    `constraints`; `length` and `count` are the language's measures of `value`, e.g. `len({})`."""
    given = dict(constraints)
    for key, (fails, rule) in {**BOUNDS, **LENGTHS, **ITEMS}.items():
        if key in given:
            bound = number_text(given[key])
            measured = length.format(value) if key in LENGTHS else count.format(value) if key in ITEMS else value
            yield f"{measured} {fails} {bound}", rule.format(bound)


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
