"""Validators for exported documents: the official AsyncAPI schema and the generated components."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema

from ..conftest import REPO_ROOT

#: Installed by `make install` from the npm package @asyncapi/specs (the AsyncAPI initiative's own schemas).
SPECS_DIR = Path(os.environ.get("TASK_ASYNCAPI_SPECS", REPO_ROOT / ".venv/npm/node_modules/@asyncapi/specs/schemas"))


def official_asyncapi_schema(version: str = "3.0.0") -> dict[str, Any]:
    path = SPECS_DIR / f"{version}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run `make install` (it installs the npm package @asyncapi/specs), "
            "or point TASK_ASYNCAPI_SPECS at its schemas/ directory"
        )
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def asyncapi_validator() -> jsonschema.Draft7Validator:
    schema = official_asyncapi_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema"
    return jsonschema.Draft7Validator(schema)


def component_validator(document: dict[str, Any], name: str) -> jsonschema.Draft7Validator:
    """A validator for `#/components/schemas/<name>` of an AsyncAPI document, resolving its local refs."""
    assert name in document["components"]["schemas"], name
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft7Validator(root)
