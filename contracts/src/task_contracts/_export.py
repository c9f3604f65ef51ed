"""Write a catalog's contracts as files that any language can read: JSON Schemas and AsyncAPI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._asyncapi import asyncapi_document
from ._catalog import ContractCatalog
from ._schema import arguments_document, result_document

ASYNCAPI_FILE = "asyncapi.json"
INDEX_FILE = "contracts.json"


def export_contracts(directory: str | Path, catalog: ContractCatalog) -> list[Path]:
    """Write per contract `<name>.arguments.schema.json` and `<name>.result.schema.json`,
    plus `asyncapi.json` and a `contracts.json` index; return the paths written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index: list[dict[str, Any]] = []
    for item in catalog:
        files = {
            "arguments": f"{item.name}.arguments.schema.json",
            "result": f"{item.name}.result.schema.json",
        }
        written.append(_write(target / files["arguments"], arguments_document(item)))
        written.append(_write(target / files["result"], result_document(item)))
        index.append(
            {
                **item.summary(),
                "parameters": [p.name for p in item.parameters],
                # The `contract_shape` header a caller sends (task_contracts.wire.SHAPE_HEADER).
                "shape": item.shape,
                "schemas": files,
            }
        )
    written.append(_write(target / ASYNCAPI_FILE, asyncapi_document(catalog)))
    written.append(_write(target / INDEX_FILE, {"contracts": index}))
    return written


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
