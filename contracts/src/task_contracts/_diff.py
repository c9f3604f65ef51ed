"""`task-contracts diff`: every change between two exports of a catalog, classified by the rules.

An export is a directory written by `task-contracts export` (or a built task-contracts wheel, whose
own catalog is exported first). Types are compared through their JSON Schemas: a type is *wider*
when it accepts every value the other accepts (`int` -> `int | None`, `int` -> `float`). The
comparison is conservative: what it cannot prove wider or narrower counts as changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._compat import RULES, Rule
from ._errors import ContractError

Schema = dict[str, Any]
_COSMETIC = ("title", "description", "examples", "default")


class ExportError(ContractError, ValueError):
    """Raised when OLD or NEW is neither an export directory nor a task-contracts wheel."""


@dataclass(frozen=True)
class Change:
    """One difference between two exports, with the rule that classifies it."""

    contract: str
    rule: Rule
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "rule": self.rule.id,
            "detail": self.detail,
            "compatible": self.rule.compatible,
            "breaks_for": list(self.rule.breaks_for),
        }

    def __str__(self) -> str:
        return f"{self.contract}: {self.detail} [{self.rule.id}: {self.rule.verdict}]"


@dataclass(frozen=True)
class ExportedContract:
    """What an export says about one contract."""

    name: str
    queue: str
    timeout: float
    idempotent: bool
    description: str
    parameters: list[str]
    arguments: Schema
    result: Schema
    on_event_loop: bool = False

    @classmethod
    def read(cls, directory: Path, entry: dict[str, Any]) -> ExportedContract:
        files = entry["schemas"]
        return cls(
            name=entry["name"],
            queue=entry["queue"],
            timeout=float(entry["timeout"]),
            idempotent=bool(entry["idempotent"]),
            description=entry.get("description", ""),
            parameters=list(entry["parameters"]),
            arguments=json.loads((directory / files["arguments"]).read_text(encoding="utf-8")),
            result=json.loads((directory / files["result"]).read_text(encoding="utf-8")),
            on_event_loop=bool(entry.get("on_event_loop", False)),  # absent from older exports: off
        )

    def parameter(self, name: str) -> tuple[Schema, bool, Any]:
        """The parameter's type schema, whether it is required, and its default."""
        raw = self.arguments.get("properties", {}).get(name, {})
        return _resolve(raw, self.arguments), name in self.arguments.get("required", []), raw.get("default")


def load_export(path: str | Path) -> dict[str, ExportedContract]:
    """The contracts of an export directory or a task-contracts wheel, by wire name."""
    source = Path(path)
    if source.is_file() and source.suffix == ".whl":
        with tempfile.TemporaryDirectory(prefix="task-contracts-diff-") as scratch:
            return _read_directory(_export_wheel(source, Path(scratch)))
    if source.is_dir():
        return _read_directory(source)
    raise ExportError(f"{path}: neither an export directory nor a .whl file")


def _read_directory(directory: Path) -> dict[str, ExportedContract]:
    index = directory / "contracts.json"
    if not index.is_file():
        raise ExportError(f"{directory}: no contracts.json (write one with `task-contracts export`)")
    entries = json.loads(index.read_text(encoding="utf-8"))["contracts"]
    return {entry["name"]: ExportedContract.read(directory, entry) for entry in entries}


def _export_wheel(wheel: Path, scratch: Path) -> Path:
    # The wheel's own code writes its export, in a child process so that its modules never mix
    # with ours; it needs only pydantic, which this environment has.
    unpacked, exported = scratch / "wheel", scratch / "export"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    if not (unpacked / "task_contracts").is_dir():
        raise ExportError(f"{wheel}: not a task-contracts wheel")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from task_contracts._cli import main; "
        "sys.exit(main(['export', sys.argv[2]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(unpacked), str(exported)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise ExportError(f"{wheel}: its export failed: {done.stderr.strip()[-500:]}")
    return exported


def diff_exports(old: dict[str, ExportedContract], new: dict[str, ExportedContract]) -> list[Change]:
    """Every change from `old` to `new`, contract by contract."""
    changes: list[Change] = []
    for name in old:
        if name not in new:
            changes.append(Change(name, RULES["contract-removed"], "contract removed"))
    for name, after in new.items():
        before = old.get(name)
        if before is None:
            changes.append(Change(name, RULES["contract-added"], "contract added"))
        else:
            changes.extend(Change(name, RULES[rule], detail) for rule, detail in _contract_changes(before, after))
    return changes


def _contract_changes(old: ExportedContract, new: ExportedContract) -> Iterator[tuple[str, str]]:
    yield from _parameter_changes(old, new)
    yield from _result_changes(old.result, new.result)
    if old.queue != new.queue:
        yield "queue-changed", f"queue changed from {old.queue!r} to {new.queue!r}"
    if old.timeout != new.timeout:
        yield "timeout-changed", f"timeout changed from {old.timeout:g} s to {new.timeout:g} s"
    if old.idempotent != new.idempotent:
        yield "idempotency-changed", f"idempotent changed from {old.idempotent} to {new.idempotent}"
    if old.on_event_loop != new.on_event_loop:
        yield "event-loop-changed", f"on_event_loop changed from {old.on_event_loop} to {new.on_event_loop}"
    if old.description != new.description:
        yield "description-changed", "description changed"


def _parameter_changes(old: ExportedContract, new: ExportedContract) -> Iterator[tuple[str, str]]:
    added = [name for name in new.parameters if name not in old.parameters]
    removed = [name for name in old.parameters if name not in new.parameters]
    # A name that disappears where another appears, with the same type, is a rename.
    for name in list(removed):
        position = old.parameters.index(name)
        if position < len(new.parameters) and new.parameters[position] in added:
            other = new.parameters[position]
            if _same(old.parameter(name)[0], new.parameter(other)[0]):
                removed.remove(name)
                added.remove(other)
                yield "parameter-renamed", f"parameter {name!r} renamed to {other!r}"
    for name in removed:
        yield "parameter-removed", f"parameter {name!r} removed"
    for name in added:
        _, required, default = new.parameter(name)
        if required:
            yield "parameter-added-required", f"parameter {name!r} added without a default"
        else:
            yield "parameter-added-optional", f"parameter {name!r} added with default {default!r}"
    for name in (name for name in new.parameters if name in old.parameters):
        before, was_required, old_default = old.parameter(name)
        after, is_required, new_default = new.parameter(name)
        kind = _type_change(before, after)
        if kind:
            yield f"parameter-type-{kind}", f"parameter {name!r} type {kind}: {_text(before)} -> {_text(after)}"
        if was_required and not is_required:
            yield "parameter-default-added", f"parameter {name!r} got default {new_default!r}"
        elif is_required and not was_required:
            yield "parameter-default-removed", f"parameter {name!r} lost its default {old_default!r}"
        elif not is_required and old_default != new_default:
            yield (
                "parameter-default-changed",
                f"parameter {name!r} default changed from {old_default!r} to {new_default!r}",
            )


def _result_changes(old_document: Schema, new_document: Schema) -> Iterator[tuple[str, str]]:
    old, new = _resolve(old_document, old_document), _resolve(new_document, new_document)
    if not (_is_model(old) and _is_model(new)):
        kind = _type_change(old, new)
        if kind:
            yield f"result-type-{kind}", f"result type {kind}: {_text(old)} -> {_text(new)}"
        return
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in old_fields:
        if name not in new_fields:
            if name in old_required:
                yield "result-field-removed", f"result field {name!r} removed"
            else:
                yield "result-field-removed-optional", f"result field {name!r} (with a default) removed"
    for name in new_fields:
        if name not in old_fields:
            if name in new_required:
                yield "result-field-added-required", f"result field {name!r} added without a default"
            else:
                yield "result-field-added-optional", f"result field {name!r} added with a default"
    for name in (name for name in new_fields if name in old_fields):
        kind = _type_change(old_fields[name], new_fields[name])
        if name in old_required and name not in new_required:
            kind = "widened" if kind in (None, "widened") else "changed"  # it may now be missing
        if kind:
            yield (
                f"result-type-{kind}",
                f"result field {name!r} type {kind}: {_text(old_fields[name])} -> {_text(new_fields[name])}",
            )


# -- JSON Schema comparison ----------------------------------------------------------------------------


def _resolve(node: Any, document: Schema, seen: frozenset[str] = frozenset()) -> Any:
    """`node` with local `$ref`s inlined and cosmetic keys dropped (titles, descriptions, defaults)."""
    if isinstance(node, list):
        return [_resolve(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in seen:
        target = document.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return _resolve(target, document, seen | {ref})
    return {
        key: _resolve(value, document, seen)
        for key, value in node.items()
        if key not in _COSMETIC and key not in ("$defs", "$schema")
    }


def _same(a: Schema, b: Schema) -> bool:
    return _accepts(a, b) and _accepts(b, a)


def _type_change(old: Schema, new: Schema) -> str | None:
    """None when equal, else 'widened' (new accepts all old does), 'narrowed', or 'changed'."""
    wider, narrower = _accepts(new, old), _accepts(old, new)
    if wider and narrower:
        return None
    return "widened" if wider else "narrowed" if narrower else "changed"


def _branches(schema: Schema) -> list[Schema] | None:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            return [{**rest, **branch} for branch in schema[key]]
    types = schema.get("type")
    if isinstance(types, list):
        return [{**schema, "type": item} for item in types]
    return None


def _accepts(wide: Schema, narrow: Schema) -> bool:
    """True if every value `narrow` accepts, `wide` accepts too (as far as can be proven)."""
    if wide == narrow or wide == {}:
        return True
    narrow_branches = _branches(narrow)
    if narrow_branches is not None:
        return all(_accepts(wide, branch) for branch in narrow_branches)
    wide_branches = _branches(wide)
    if wide_branches is not None:
        return any(_accepts(branch, narrow) for branch in wide_branches)
    if "const" in narrow or "enum" in narrow:
        values = [narrow["const"]] if "const" in narrow else narrow["enum"]
        if "const" in wide or "enum" in wide:
            allowed = [wide["const"]] if "const" in wide else wide["enum"]
            return all(value in allowed for value in values)
        return all(_json_type(value) in _types(wide) for value in values) and not _constraints(wide)
    wide_type, narrow_type = wide.get("type"), narrow.get("type")
    if wide_type != narrow_type and not (wide_type == "number" and narrow_type == "integer"):
        return False
    if not all(narrow.get(key) == value for key, value in _constraints(wide).items()):
        return False
    if wide_type == "array":
        if "prefixItems" in wide or "prefixItems" in narrow:
            return wide.get("prefixItems") == narrow.get("prefixItems") and wide.get("items") == narrow.get("items")
        return _accepts(wide.get("items", {}), narrow.get("items", {}))
    if wide_type == "object":
        return _object_accepts(wide, narrow)
    return True


def _object_accepts(wide: Schema, narrow: Schema) -> bool:
    wide_fields, narrow_fields = wide.get("properties", {}), narrow.get("properties", {})
    if not set(wide.get("required", [])) <= set(narrow.get("required", [])):
        return False  # a value of `narrow` may lack a field `wide` requires
    for name, schema in narrow_fields.items():
        if name in wide_fields and not _accepts(wide_fields[name], schema):
            return False
        if name not in wide_fields and wide.get("additionalProperties") is False:
            return False
    if "additionalProperties" in wide or "additionalProperties" in narrow:
        extra_wide, extra_narrow = wide.get("additionalProperties", {}), narrow.get("additionalProperties", {})
        if isinstance(extra_wide, dict) and isinstance(extra_narrow, dict):
            return _accepts(extra_wide, extra_narrow)
        return extra_wide is not False or extra_narrow is False
    return True


def _constraints(schema: Schema) -> dict[str, Any]:
    ignored = {"type", "items", "prefixItems", "properties", "required", "additionalProperties", "anyOf", "oneOf"}
    return {key: value for key, value in schema.items() if key not in ignored}


def _types(schema: Schema) -> set[str]:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    return kinds | ({"integer"} if "number" in kinds else set())


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "unknown")


def _is_model(schema: Schema) -> bool:
    return schema.get("type") == "object" and "properties" in schema


def _text(schema: Schema) -> str:
    branches = _branches(schema)
    if branches is not None:
        return " | ".join(_text(branch) for branch in branches)
    if "const" in schema:
        return repr(schema["const"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"list[{_text(schema.get('items', {}))}]"
    if _is_model(schema):
        return "{" + ", ".join(f"{key}: {_text(value)}" for key, value in schema["properties"].items()) + "}"
    return {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "None"}.get(kind, kind)
