"""One AsyncAPI 3.0 document for a catalog: the queues, Celery's protocol-v2 envelope on Redis, each payload.

The document describes the worker side (`task-server`): it receives calls on each contract's
queue (a Redis list that producers `LPUSH` to) and stores every result record under
`celery-task-meta-<task id>`, publishing it on a pub/sub channel of the same name.
Schemas inside use the AsyncAPI default schema format (a superset of JSON Schema draft-07).
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ._catalog import ContractCatalog
from ._contract import Contract
from ._schema import Draft07Converter, JsonSchema
from .wire import (
    ATTEMPT_FIELD,
    CALL_DIGEST_FIELD,
    CANCEL_HASH_HEADER,
    CANCEL_TOKEN_FIELD,
    PROGRESS_DONE,
    PROGRESS_MESSAGE,
    PROGRESS_STATE,
    PROGRESS_TOTAL,
    RESULT_KEY_PREFIX,
    SHAPE_HEADER,
    SIGNATURE_FIELD,
    SIGNER_FIELD,
)

ASYNCAPI_VERSION = "3.0.0"
ENVELOPE = "celery.envelope"
RESULT_RECORD = "celery.result"
RESULT_CHANNEL = "results"
_REF = "#/components/schemas/"


def asyncapi_document(catalog: ContractCatalog, *, title: str = "task-server") -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) describing every contract of `catalog`."""
    schemas: dict[str, JsonSchema] = {ENVELOPE: _envelope_schema(), **_record_schemas()}
    converter = Draft07Converter(schemas)
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for item in catalog:
        _add_contract(item, converter, schemas, messages)
        channel = channels.setdefault(
            item.queue,
            {
                "address": item.queue,
                "title": f"queue {item.queue}",
                "description": (
                    f"Redis list `{item.queue}`: a producer LPUSHes one JSON envelope per call; "
                    "workers consuming this queue pop it."
                ),
                "messages": {},
            },
        )
        channel["messages"][item.name] = {"$ref": f"#/components/messages/{item.name}"}
        operations[item.name] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{item.queue}"},
            "title": item.name,
            "summary": f"{item.name}{item.signature_text()}",
            "description": _operation_text(item),
            "messages": [{"$ref": f"#/channels/{item.queue}/messages/{item.name}"}],
            "reply": {
                "channel": {"$ref": f"#/channels/{RESULT_CHANNEL}"},
                "messages": [{"$ref": f"#/channels/{RESULT_CHANNEL}/messages/{RESULT_RECORD}"}],
            },
        }
    channels[RESULT_CHANNEL] = {
        "address": RESULT_KEY_PREFIX + "{task_id}",
        "title": "result records",
        "description": (
            f"Redis string key `{RESULT_KEY_PREFIX}<task id>` holding the latest record as JSON; the same "
            "record is PUBLISHed on the pub/sub channel of that name whenever it is stored. "
            "Subscribe first, then GET, so that no record is missed."
        ),
        "parameters": {"task_id": {"description": "The `id` header of the call."}},
        "messages": {
            RESULT_RECORD: {
                "name": RESULT_RECORD,
                "title": "result record",
                "contentType": "application/json",
                "payload": {"$ref": _REF + RESULT_RECORD},
            }
        },
    }
    operations["results.store"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{RESULT_CHANNEL}"},
        "title": "store a result record",
        "summary": "The worker stores (SET) and publishes (PUBLISH) each record of a call.",
        "messages": [{"$ref": f"#/channels/{RESULT_CHANNEL}/messages/{RESULT_RECORD}"}],
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": _package_version(),
            "description": (
                "Task contracts served by Celery workers over Redis (Celery message protocol v2, JSON "
                "serialiser). Any language that can LPUSH a JSON string and GET a key can call them."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "127.0.0.1:6379",
                "pathname": "/0",
                "protocol": "redis",
                "description": "The broker and result backend (TASK_BROKER_URL); host and database vary.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _add_contract(
    item: Contract[..., Any], converter: Draft07Converter, schemas: dict[str, JsonSchema], messages: dict[str, Any]
) -> None:
    arguments = converter.convert(item.arguments_schema(), item.name)
    schemas[f"{item.name}.arguments"] = arguments
    schemas[f"{item.name}.result"] = converter.convert(item.result_schema(), item.name)
    schemas[f"{item.name}.body"] = _body_schema(item, arguments)
    schemas[f"{item.name}.envelope"] = _contract_envelope(item)
    messages[item.name] = {
        "name": item.name,
        "title": item.name,
        "summary": item.description or item.name,
        "contentType": "application/json",
        "correlationId": {"location": "$message.payload#/headers/id"},
        "payload": {"$ref": f"{_REF}{item.name}.envelope"},
    }


def _operation_text(item: Contract[..., Any]) -> str:
    return (
        f"{item.description}\n\nQueue `{item.queue}`; the worker stops the task after {item.timeout:g} s; "
        f"{'idempotent (redelivered after a worker crash)' if item.idempotent else 'not idempotent'}; "
        f"contract fingerprint `{item.fingerprint}`."
    ).strip()


def _body_schema(item: Contract[..., Any], arguments: JsonSchema) -> JsonSchema:
    """`[args, kwargs, embed]` after base64-decoding `body`."""
    properties: dict[str, JsonSchema] = arguments.get("properties", {})
    positional = [p.name for p in item.parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    return {
        "title": f"{item.name} body",
        "description": (
            "Decoded `body`: positional arguments, named arguments, and Celery's embed object. Each parameter "
            "is given once, by position (in declaration order) or by name; required: "
            f"{', '.join(arguments.get('required', [])) or 'none'}."
        ),
        "type": "array",
        "minItems": 3,
        "maxItems": 3,
        "items": [
            {"type": "array", "items": [properties[name] for name in positional], "additionalItems": False},
            {"type": "object", "properties": properties, "additionalProperties": False},
            {
                "type": "object",
                "description": "Celery's canvas fields; `{}` when unused.",
                "properties": {key: {"type": ["array", "object", "null"]} for key in _EMBED_KEYS},
            },
        ],
    }


_EMBED_KEYS = ("callbacks", "errbacks", "chain", "chord")


def _contract_envelope(item: Contract[..., Any]) -> JsonSchema:
    return {
        "title": f"{item.name} message",
        "allOf": [
            {"$ref": _REF + ENVELOPE},
            {
                "type": "object",
                "properties": {
                    "body": {
                        "type": "string",
                        "contentEncoding": "base64",
                        "contentMediaType": "application/json",
                        "description": f"base64 of the JSON array described by `{item.name}.body`.",
                        "x-decoded-schema": {"$ref": f"{_REF}{item.name}.body"},
                    },
                    "headers": {
                        "type": "object",
                        "properties": {
                            "task": {"const": item.name},
                        },
                    },
                },
            },
        ],
    }


def _envelope_schema() -> JsonSchema:
    """Celery protocol v2 as kombu's Redis transport stores it; `required` is what a worker needs."""
    nullable_string = {"type": ["string", "null"]}
    return {
        "title": "Celery protocol v2 envelope on Redis",
        "description": (
            "One JSON string per call in the queue's Redis list. Required fields are the measured minimum a "
            "Celery 5 worker accepts: without `content-type` the body is not decoded, and without "
            "`properties.delivery_tag` or `properties.delivery_info` the worker's consumer fails and reconnects."
        ),
        "type": "object",
        "required": ["body", "content-type", "headers", "properties"],
        "properties": {
            "body": {"type": "string", "contentEncoding": "base64", "contentMediaType": "application/json"},
            "content-type": {"const": "application/json"},
            "content-encoding": {"const": "utf-8"},
            "headers": {
                "type": "object",
                "required": ["task", "id"],
                "properties": {
                    "task": {"type": "string", "description": "The contract's wire name."},
                    "id": {"type": "string", "description": "Task id (a UUID); names the result key."},
                    "lang": {"type": "string"},
                    "root_id": nullable_string,
                    "parent_id": nullable_string,
                    "group": nullable_string,
                    "group_index": {"type": ["integer", "null"]},
                    "shadow": nullable_string,
                    "eta": {"type": ["string", "null"], "description": "ISO 8601 time before which not to run."},
                    "expires": {"type": ["string", "null"], "description": "ISO 8601 time after which to discard."},
                    "retries": {"type": "integer", "minimum": 0},
                    "timelimit": {
                        "type": "array",
                        "description": "[hard, soft] seconds, each null for the task's own limit.",
                        "items": {"type": ["number", "null"]},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    "argsrepr": nullable_string,
                    "kwargsrepr": nullable_string,
                    "origin": nullable_string,
                    "ignore_result": {"type": ["boolean", "null"]},
                    "replaced_task_nesting": {"type": "integer"},
                    "stamped_headers": {"type": ["array", "null"]},
                    "stamps": {"type": "object"},
                    CANCEL_HASH_HEADER: {
                        "type": "string",
                        "pattern": "^[0-9a-f]{64}$",
                        "description": (
                            "Optional: lowercase hex SHA-256 of the UTF-8 cancel token only the caller knows. "
                            "A revoke mark then cancels the call only if it is the JSON "
                            '{"reason": ..., "token": <the token>}; without this header any mark cancels it.'
                        ),
                    },
                    SHAPE_HEADER: {
                        "type": "object",
                        "description": (
                            "Optional: the shape of the contract the caller was built with. The worker binds "
                            "positional arguments to these parameter names, uses its own defaults for the rest, "
                            "and refuses with ContractMismatch only a difference that breaks the call. Without "
                            "it the call is validated against the worker's contract alone."
                        ),
                        "required": ["version", "parameters"],
                        "properties": {
                            "version": {"type": "integer", "minimum": 1, "description": "The major version."},
                            "parameters": {
                                "type": "array",
                                "description": (
                                    "[name, type text, digest] per parameter in declaration order; the digest "
                                    "is 8 hex digits of the SHA-256 of the type's JSON Schema (sorted keys)."
                                ),
                                "items": {
                                    "type": "array",
                                    "items": [{"type": "string"}, {"type": "string"}, {"type": "string"}],
                                    "minItems": 3,
                                    "maxItems": 3,
                                },
                            },
                        },
                    },
                },
            },
            "properties": {
                "type": "object",
                "required": ["body_encoding", "delivery_tag", "delivery_info"],
                "properties": {
                    "body_encoding": {"const": "base64"},
                    "delivery_tag": {"type": "string", "description": "A fresh UUID per message."},
                    "delivery_info": {
                        "type": "object",
                        "required": ["exchange", "routing_key"],
                        "properties": {
                            "exchange": {"type": "string", "description": "Empty: the default exchange."},
                            "routing_key": {"type": "string", "description": "The queue name."},
                        },
                    },
                    "correlation_id": {"type": "string"},
                    "reply_to": {
                        "type": "string",
                        "description": "A channel starting with task-client- gets every record of the call "
                        "published on it too (one subscription for all of a caller's calls); "
                        "any other value is ignored.",
                    },
                    "delivery_mode": {"type": "integer"},
                    "priority": {"type": "integer", "minimum": 0, "maximum": 255},
                },
            },
        },
    }


def _record_schemas() -> dict[str, JsonSchema]:
    failure = {
        "title": "failure",
        "type": "object",
        "required": ["exc_type", "exc_message"],
        "properties": {
            "exc_type": {
                "type": "string",
                "description": (
                    "Exception class name: InvalidArguments, ContractMismatch, InvalidResult, NotRegistered, "
                    "DuplicateTaskId (published on the reply channel only), or the implementation's own "
                    "(e.g. ZeroDivisionError)."
                ),
            },
            "exc_message": {"description": "The exception's arguments (usually a one-item array)."},
            "exc_module": {"type": "string"},
        },
    }
    progress = {
        "title": "progress report",
        "type": "object",
        "required": [PROGRESS_DONE, PROGRESS_TOTAL],
        "properties": {
            PROGRESS_DONE: {"type": "number", "minimum": 0},
            PROGRESS_TOTAL: {"type": ["number", "null"], "minimum": 0},
            PROGRESS_MESSAGE: {"type": "string"},
        },
    }
    record = {
        "title": "Celery result record",
        "description": (
            "SUCCESS: `result` is the value (see `<contract>.result`). FAILURE: `result` is a failure object. "
            f"{PROGRESS_STATE}: `result` is a progress report; STARTED/RETRY may appear too."
        ),
        "type": "object",
        "required": ["status", "result", "task_id"],
        "properties": {
            "status": {"enum": ["PENDING", "STARTED", "RETRY", PROGRESS_STATE, "SUCCESS", "FAILURE", "REVOKED"]},
            "result": {},
            "traceback": {"type": ["string", "null"]},
            "children": {"type": "array"},
            "date_done": {"type": ["string", "null"]},
            "task_id": {"type": "string"},
            ATTEMPT_FIELD: {"type": "integer", "minimum": 1, "description": "The attempt that stored it."},
            CALL_DIGEST_FIELD: {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": (
                    "SHA-256 of the canonical JSON of [args, kwargs] as the worker received them: a caller "
                    "refuses a record whose digest is not its call's (another message reused the id)."
                ),
            },
            CANCEL_TOKEN_FIELD: {
                "type": "string",
                "description": "REVOKED records written by a canceller: the call's cancel token.",
            },
            SIGNER_FIELD: {"type": "string", "description": "Signed records: the id of the worker key."},
            SIGNATURE_FIELD: {
                "type": "string",
                "contentEncoding": "base64",
                "description": (
                    "Signed records: Ed25519 signature of 'task-sdk-record-v1\\n' followed by the canonical JSON "
                    "(sorted keys, no spaces, ASCII) of the record without this field. Optional to check."
                ),
            },
        },
        "allOf": [
            {
                "if": {"properties": {"status": {"const": "FAILURE"}}},
                "then": {"properties": {"result": {"$ref": _REF + "celery.failure"}}},
            },
            {
                "if": {"properties": {"status": {"const": PROGRESS_STATE}}},
                "then": {"properties": {"result": {"$ref": _REF + "celery.progress"}}},
            },
        ],
    }
    return {RESULT_RECORD: record, "celery.failure": failure, "celery.progress": progress}


def _package_version() -> str:
    try:
        return version("task-contracts")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"
