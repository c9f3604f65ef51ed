"""`task-contracts export`: JSON Schemas and one AsyncAPI 3.0 document, validated against the published schemas."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest

from task_contracts import (
    CATALOG,
    ContractCatalog,
    arguments_document,
    asyncapi_document,
    contract,
    export_contracts,
)

from ..wire.schemas import asyncapi_validator, component_validator


class Point(pydantic.BaseModel):
    x: float
    y: float


@contract(name="geo.shift", queue="geo")
def shift(points: list[Point], by: tuple[int, str], *, label: str | None = None) -> list[Point]:  # type: ignore[empty-body]
    """Shift points."""
    ...


MODEL_CATALOG = ContractCatalog(shift, *CATALOG)


def _export(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "task_contracts._cli", "export", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_export_command_writes_schemas_for_every_contract(tmp_path: Path) -> None:
    done = _export(tmp_path)
    assert done.returncode == 0, done.stderr
    expected = {f"{item.name}.{kind}.schema.json" for item in CATALOG for kind in ("arguments", "result")}
    expected |= {"asyncapi.json", "contracts.json"}
    assert {path.name for path in tmp_path.iterdir()} == expected
    assert {Path(line).name for line in done.stdout.split()} == expected
    index = json.loads((tmp_path / "contracts.json").read_text())
    add = next(item for item in index["contracts"] if item["name"] == "math.add")
    assert add["queue"] == "math" and add["fingerprint"] == CATALOG.get("math.add").fingerprint  # type: ignore[union-attr]
    assert add["signature"] == "(x: int, y: int) -> int"


def test_exported_json_schemas_satisfy_the_draft_2020_12_metaschema(tmp_path: Path) -> None:
    assert _export(tmp_path).returncode == 0
    files = sorted(tmp_path.glob("*.schema.json"))
    assert len(files) == 2 * len(CATALOG)
    for path in files:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)  # raises SchemaError naming the fault
    arguments = json.loads((tmp_path / "math.add.arguments.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(arguments)
    assert validator.is_valid({"x": 4, "y": 7})
    assert not validator.is_valid({"x": "four", "y": 7})
    assert not validator.is_valid({"x": 4})
    assert not validator.is_valid({"x": 4, "y": 7, "z": 1})


def test_asyncapi_document_satisfies_the_official_asyncapi_3_schema(tmp_path: Path) -> None:
    assert _export(tmp_path).returncode == 0
    document = json.loads((tmp_path / "asyncapi.json").read_text())
    assert document["asyncapi"] == "3.0.0"
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in asyncapi_validator().iter_errors(document)]
    assert errors == []
    assert set(document["channels"]) == {*CATALOG.queues(), "results"}
    assert document["channels"]["math"]["address"] == "math"
    assert set(document["channels"]["reports"]["messages"]) == {"reports.count_to"}
    assert document["operations"]["math.add"]["action"] == "receive"


def test_the_official_schema_rejects_a_broken_document() -> None:
    document = asyncapi_document(CATALOG)
    broken: dict[str, Any] = json.loads(json.dumps(document))
    del broken["operations"]["math.add"]["action"]
    broken["channels"]["math"]["address"] = 42
    assert not asyncapi_validator().is_valid(broken)


def test_model_and_tuple_types_become_resolvable_draft_07_components() -> None:
    document = asyncapi_document(MODEL_CATALOG)
    assert list(asyncapi_validator().iter_errors(document)) == []
    schemas = document["components"]["schemas"]
    assert "geo.shift.Point" in schemas  # pydantic's $defs, hoisted under the contract's name
    assert "$defs" not in json.dumps(schemas) and "prefixItems" not in json.dumps(schemas)
    body = component_validator(document, "geo.shift.body")
    good = [[[{"x": 1, "y": 2}], [3, "m"]], {"label": "a"}, {}]
    assert body.is_valid(good)
    assert not body.is_valid([[[{"x": "one", "y": 2}], [3, "m"]], {}, {}])  # through the hoisted $ref
    assert not body.is_valid([[[], [3, "m", "extra"]], {}, {}])  # tuple length
    assert not body.is_valid([[[], [3, "m"]], {"unknown": 1}, {}])
    assert not body.is_valid([[[], [3, "m"]], {}])  # embed is required by workers
    envelope = component_validator(document, "geo.shift.envelope")
    message = _minimal_envelope("geo.shift", "geo", good)
    assert envelope.is_valid(message)
    assert not envelope.is_valid({**message, "headers": {"task": "math.add", "id": "1"}})
    del message["properties"]["delivery_info"]
    assert not envelope.is_valid(message)


def test_standalone_schema_keeps_models_in_defs() -> None:
    schema = arguments_document(shift)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"points": [{"x": 1, "y": 2}], "by": [1, "a"]})
    assert not validator.is_valid({"points": [{"x": "no", "y": 2}], "by": [1, "a"]})


def test_export_function_returns_the_paths_it_wrote(tmp_path: Path) -> None:
    written = export_contracts(tmp_path / "out", MODEL_CATALOG)
    assert all(path.is_file() for path in written)
    assert (tmp_path / "out" / "geo.shift.arguments.schema.json") in written


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "COMMAND"),
        (["export", "--catalog", "task_contracts"], "expected MODULE:NAME"),
        (["export", "--catalog", "task_contracts:math"], "not a ContractCatalog"),
    ],
)
def test_command_usage_errors_exit_2(tmp_path: Path, argv: list[str], problem: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "task_contracts._cli", *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2
    assert problem in done.stdout + done.stderr
    assert not (tmp_path / "contracts-export").exists()


def _minimal_envelope(task: str, queue: str, body: list[Any]) -> dict[str, Any]:
    return {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-type": "application/json",
        "headers": {"task": task, "id": "00000000-0000-0000-0000-000000000001"},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": "00000000-0000-0000-0000-000000000002",
            "delivery_info": {"exchange": "", "routing_key": queue},
        },
    }
