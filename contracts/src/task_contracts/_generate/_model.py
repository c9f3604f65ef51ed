"""What the generators read: an export directory (`task-contracts export`) turned into plain data.

Every language's generator works from this one reading of the JSON Schemas, so the three clients
agree on names, optionality and constraints. Only the forms pydantic writes for the types a contract
may use are understood (int, float, str, bool, lists, dicts with string keys, optionals, literals,
models); anything else is a `GenerateError` naming the contract, never a silently weaker type.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import GenerateError

#: JSON Schema keywords checked before publishing, because no target language's type says them.
CONSTRAINT_KEYS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "enum",
    "const",
)
# Keywords that describe a value without constraining it.
_NOTES = {"title", "description", "default", "examples", "$schema", "additionalProperties", "required"}


@dataclass(frozen=True)
class Type:
    """One value's type: `kind` is int, float, str, bool, any, list, dict, model or optional."""

    kind: str
    item: Type | None = None  # list and dict values, the optional's inner type
    model: str | None = None
    constraints: tuple[tuple[str, Any], ...] = ()

    @property
    def inner(self) -> Type:
        """The list's or dict's values, the optional's type (only for those kinds)."""
        assert self.item is not None, self.kind
        return self.item

    @property
    def checked(self) -> bool:
        """Whether a value of this type needs a check beyond what the language's type says."""
        if self.constraints or self.kind == "model":
            return True
        return self.item is not None and self.item.checked


@dataclass(frozen=True)
class Field:
    """A parameter of a contract or a field of a model."""

    name: str
    type: Type
    required: bool
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class Model:
    name: str
    description: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Contract:
    name: str
    version: int
    queue: str
    timeout: float
    description: str
    fingerprint: str
    shape: Any
    parameters: tuple[Field, ...]
    result: Type


@dataclass
class Catalog:
    """Contracts in declaration order, the models they use by name, and the catalog's fingerprint."""

    contracts: list[Contract]
    models: dict[str, Model] = field(default_factory=dict)
    fingerprint: str = ""


def read_export(directory: Path) -> Catalog:
    """Read `contracts.json` and every contract's two schemas from an export directory."""
    index_path = directory / "contracts.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))["contracts"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise GenerateError(f"{index_path}: not an export index ({error})") from None
    catalog = Catalog(contracts=[])
    for entry in index:
        catalog.contracts.append(_read_contract(directory, entry, catalog.models))
    identity = [[item.name, item.fingerprint] for item in catalog.contracts]
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    catalog.fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return catalog


def _read_contract(directory: Path, entry: dict[str, Any], models: dict[str, Model]) -> Contract:
    name = entry["name"]
    if "shape" not in entry:
        raise GenerateError(f"{name}: the export has no call shape; export again with this task-contracts")
    arguments = _load(directory / entry["schemas"]["arguments"])
    result = _load(directory / entry["schemas"]["result"])
    reader = _Reader(name, models)
    reader.collect(arguments)
    reader.collect(result)
    required = set(arguments.get("required", []))
    parameters = tuple(
        _field(reader, param, schema, param in required) for param, schema in arguments.get("properties", {}).items()
    )
    return Contract(
        name=name,
        version=int(entry.get("version", 1)),
        queue=entry["queue"],
        timeout=float(entry["timeout"]),
        description=entry.get("description", ""),
        fingerprint=entry["fingerprint"],
        shape=entry["shape"],
        parameters=parameters,
        result=reader.result_type(result, entry.get("signature", "")),
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GenerateError(f"{path}: {error}") from None
    return document


def _field(reader: _Reader, name: str, schema: dict[str, Any], required: bool) -> Field:
    return Field(
        name=name,
        type=reader.type_of(schema),
        required=required,
        default=schema.get("default"),
        has_default="default" in schema,
    )


class _Reader:
    """Turns one contract's schemas into `Type`s, registering the models it meets."""

    def __init__(self, contract: str, models: dict[str, Model]) -> None:
        self.contract = contract
        self.models = models
        self.definitions: dict[str, dict[str, Any]] = {}
        self.renamed: dict[str, str] = {}

    def collect(self, document: dict[str, Any]) -> None:
        self.definitions.update(document.get("$defs", {}))

    def result_type(self, schema: dict[str, Any], signature: str) -> Type:
        # The standalone result schema inlines a model (its title becomes "<name> result"); the
        # signature still names the class, e.g. "(numbers: list[float]) -> Stats".
        if schema.get("type") == "object" and "properties" in schema:
            declared = signature.rpartition("->")[2].strip()
            name = declared if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", declared) else camel(self.contract) + "Result"
            return Type("model", model=self._register(name, schema))
        return self.type_of(schema)

    def type_of(self, schema: dict[str, Any]) -> Type:
        constraints = tuple((key, schema[key]) for key in CONSTRAINT_KEYS if key in schema)
        if "$ref" in schema:
            ref = schema["$ref"].removeprefix("#/$defs/")
            if ref not in self.definitions:
                raise GenerateError(f"{self.contract}: unresolved reference {schema['$ref']}")
            return Type("model", model=self._register(ref, self.definitions[ref]))
        if "anyOf" in schema:
            options = [item for item in schema["anyOf"] if item != {"type": "null"}]
            if len(options) == 1 and len(schema["anyOf"]) == 2:
                return Type("optional", item=self.type_of(options[0]))
            raise GenerateError(f"{self.contract}: unions other than `T | None` are not supported: {schema}")
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            kinds = {_scalar_kind(value) for value in values}
            if len(kinds) != 1:
                raise GenerateError(f"{self.contract}: a literal mixing types is not supported: {values}")
            return Type(kinds.pop(), constraints=constraints)
        kind = schema.get("type")
        if kind == "integer":
            return Type("int", constraints=constraints)
        if kind == "number":
            return Type("float", constraints=constraints)
        if kind == "string":
            if "format" in schema:
                raise GenerateError(f"{self.contract}: string format {schema['format']!r} is not supported")
            return Type("str", constraints=constraints)
        if kind == "boolean":
            return Type("bool")
        if kind == "array":
            if "prefixItems" in schema:
                raise GenerateError(f"{self.contract}: tuples are not supported")
            return Type("list", item=self.type_of(schema.get("items", {})), constraints=constraints)
        if kind == "object" and "properties" not in schema:
            return Type("dict", item=self.type_of(schema.get("additionalProperties", {}) or {}))
        if kind is None and not set(schema) - _NOTES:
            return Type("any")
        raise GenerateError(f"{self.contract}: unsupported schema {json.dumps(schema, sort_keys=True)}")

    def _register(self, name: str, schema: dict[str, Any]) -> str:
        required = set(schema.get("required", []))
        fields = tuple(_field(self, key, value, key in required) for key, value in schema.get("properties", {}).items())
        model = Model(name=name, description=schema.get("description", ""), fields=fields)
        known = self.models.get(name)
        if known is None or known == model:
            self.models[name] = model
            return name
        # Two contracts use different classes of one name: the later one is qualified.
        qualified = camel(self.contract) + name
        self.models[qualified] = Model(qualified, model.description, model.fields)
        return qualified


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise GenerateError(f"literal {value!r} is not a bool, number or string")


def camel(name: str) -> str:
    """`math.count_to` -> `MathCountTo`."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", name) if part)


def lower_camel(name: str) -> str:
    text = camel(name)
    return text[:1].lower() + text[1:]
