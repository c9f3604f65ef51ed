"""What a task message must look like before any of Celery's code reads it: pure checks, no I/O.

Celery trusts its producers: a header of the wrong type (`"retries": "many"`, a `timelimit` that is
a string), an unparseable `eta`, or an embed whose `callbacks` is not a list raised deep inside the
worker, where the message was never acknowledged and no record was stored; eight of them filled the
prefetch window and the worker stopped consuming. JSON nested a thousand deep raised
`RecursionError`, which stopped the worker. So each message is checked here first, against the
fields Celery's `Request`, its tracer and our own bookkeeping read, and refused with the reason.

Protocol v1 (a body `{"id", "task", "args", "kwargs", ...}`, sent by gocelery and Celery 3) and
Celery's hybrid form (v2 headers, a v1 body) are converted by Celery's own functions, as a stock
worker converts them, and then checked like any v2 message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from celery.exceptions import InvalidTaskError
from celery.utils.time import maybe_iso8601
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2
from pydantic_core import from_json

from ._internals.amqp_frames import RECEIVED_BYTES, UNREADABLE_HEADER
from ._sizes import text_bytes

#: Deepest nesting of lists and objects accepted in a message's body or envelope. Celery's own
#: canvas (a chord inside a chain) stays far below it; Python's JSON codec fails near 1,000.
MAX_NESTING = 100
#: What `nesting_exceeds` descends into. A tuple, not `list | dict`: `isinstance` with a union type
#: takes a slower path, and the walk calls it for every value of every message (a third of the walk's
#: instructions, measured with callgrind).
_CONTAINERS = (list, dict)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def is_text(value: Any) -> bool:
    """A string that UTF-8 can write: py-amqp and JSON's `\\udcff` both yield lone surrogates, which
    no Redis key or channel can be named with (redis-py raises UnicodeEncodeError)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _task_id(value: Any) -> bool:
    # Celery stores no record for an empty id ("task_id must not be empty"): it ran, and left its
    # start counter and running mark behind under the bare prefixes.
    return value != "" and is_text(value)


def _optional_text(value: Any) -> bool:
    return value is None or is_text(value)


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


def _time_limits(value: Any) -> bool:
    return value is None or (isinstance(value, list | tuple) and len(value) == 2 and all(map(_seconds, value)))


def _signatures(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(map(_signature, value)))


def _signature(value: Any) -> bool:
    # What Celery's `signature(dict)` reads before it can dispatch one; the rest is the canvas's own.
    return (
        isinstance(value, dict)
        and isinstance(value.get("task"), str)
        and isinstance(value.get("args", []), list | tuple)
        and isinstance(value.get("kwargs", {}), dict)
        and isinstance(value.get("options", {}), dict)
        and _optional_str(value.get("subtask_type"))
    )


def _optional_signature(value: Any) -> bool:
    return value is None or _signature(value)


def _str_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(map(_is_str, value)))


def _mapping(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _optional_count(value: Any) -> bool:
    return value is None or _count(value)


# Each header Celery's worker (or ours) reads, with the type it assumes; other headers are ignored.
_HEADERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (_task_id, "a non-empty string of UTF-8 text"),
    "task": (_is_str, "a string"),
    "lang": (_optional_str, "a string or null"),
    "shadow": (_optional_str, "a string or null"),
    "eta": (_optional_str, "an ISO 8601 date-time string or null"),
    "expires": (_optional_str, "an ISO 8601 date-time string or null"),
    "group": (_optional_str, "a string or null"),
    "group_index": (_optional_count, "a non-negative integer or null"),
    "retries": (_optional_count, "a non-negative integer"),
    "timelimit": (_time_limits, "[hard, soft] seconds, each a non-negative number or null"),
    "root_id": (_optional_str, "a string or null"),
    "parent_id": (_optional_str, "a string or null"),
    "argsrepr": (_optional_str, "a string or null"),
    "kwargsrepr": (_optional_str, "a string or null"),
    "origin": (_optional_str, "a string or null"),
    "ignore_result": (lambda value: value is None or isinstance(value, bool), "true, false or null"),
    "replaced_task_nesting": (_optional_count, "a non-negative integer"),
    "stamped_headers": (_str_list, "a list of strings or null"),
    "stamps": (_mapping, "an object or null"),
    "meth": (_optional_str, "a string or null"),
    "reply_to": (_optional_text, "a string of UTF-8 text or null"),
    "correlation_id": (_optional_str, "a string or null"),
}

_EMBED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "callbacks": (_signatures, "a list of task signatures or null"),
    "errbacks": (_signatures, "a list of task signatures or null"),
    "chain": (_signatures, "a list of task signatures or null"),
    "chord": (_optional_signature, "a task signature or null"),
    "group": (_optional_str, "a string or null"),
    "group_index": (_optional_count, "a non-negative integer or null"),
}

_PROPERTIES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "correlation_id": (_optional_str, "a string or null"),
    "reply_to": (_optional_text, "a string of UTF-8 text or null"),
    "priority": (_optional_count, "a non-negative integer or null"),
    "delivery_info": (_mapping, "an object"),
}


def may_hold_kombu_type(text: bytes | str) -> bool:
    """Whether kombu's JSON could decode `text` otherwise than `json.loads`: it turns an object
    `{"__type__": ..., "__value__": ...}` into a date, a UUID..., and a `\\u` escape could spell that key."""
    if isinstance(text, bytes):
        return b"__type__" in text or b"\\u" in text
    return "__type__" in text or "\\u" in text


def json_value(text: bytes | str) -> Any:
    """`json.loads(text)`: the same value, or the same error raised.

    Read by pydantic-core's `from_json` (Rust, no Python frames: a call's 1.1 kB envelope in 2.6
    against 4.8 µs, its body in 0.4 against 1.6, timeit); what it refuses goes to `json.loads`,
    which reads it (a lone surrogate escape, a BOM, UTF-16/32, nesting past its limit of ~200) or
    raises what it raised before (`RecursionError` included). A str holding a lone surrogate (py-amqp
    decodes a body by its content_encoding) is a TypeError there: json.loads reads that too. Text
    with a \\u escape goes to `json.loads` alone: pydantic-core 2.18.1 (pydantic 2.7's, the floor)
    reads an escaped non-ASCII character wrongly ("caf\\u00e9" as "cafÃ©")."""
    try:
        if not _unicode_escaped(text):
            return from_json(text)
    except (ValueError, TypeError):
        pass
    return json.loads(text)


def _unicode_escaped(text: Any) -> bool:
    if isinstance(text, str):
        return "\\u" in text
    return isinstance(text, bytes | bytearray) and b"\\u" in text


def body_refusal(content_type: Any, body: bytes | str, limit: int, accepted: set[str]) -> tuple[str | None, Any]:
    """Why a protocol-v2 body must not run (or None), and the body decoded when it could be."""
    problem = size_refusal(body, limit)
    if problem:
        return problem, None
    if not isinstance(content_type, str) or content_type not in accepted:
        shown = ", ".join(sorted(accepted))
        return f"content type {content_type!r} is not accepted (accepted: {shown}); not decoded", None
    try:
        decoded = json_value(body)
    except RecursionError:
        return f"message body is nested too deeply (more than {MAX_NESTING} levels)", None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        return f"message body is not valid JSON: {error}", None
    if nesting_exceeds(decoded, MAX_NESTING, hint=body):
        return f"message body is nested too deeply (more than {MAX_NESTING} levels)", None
    return None, decoded


def received_size_refusal(message: Any, limit: int) -> str | None:
    """Why a message is too large as a whole (body, headers and properties as received, with a
    base64 body counted as the bytes it decodes to), or None; None too when its transport did not
    measure it (`RECEIVED_BYTES`, set by `_transport` and `_internals.amqp_acks`)."""
    size = getattr(message, RECEIVED_BYTES, None)
    if size is not None and size > limit:
        return (
            f"message is {size} bytes (body, headers and properties), more than this worker accepts "
            f"({limit} bytes, --max-message-bytes)"
        )
    return None


def size_refusal(body: bytes | str, limit: int) -> str | None:
    size = text_bytes(body)  # a body py-amqp decoded by its content_encoding is text: its UTF-8 bytes count
    if size > limit:
        return f"message body is {size} bytes, more than this worker accepts ({limit} bytes, --max-message-bytes)"
    return None


def v2_refusal(decoded: Any, headers: Mapping[str, Any]) -> str | None:
    """Why a decoded `[args, kwargs, embed]` body with these headers must not run, or None."""
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
        and isinstance(decoded[2], dict | None)
    ):
        return "message body is not a protocol-v2 [args, kwargs, embed] triple"
    return headers_refusal(headers) or fields_refusal(decoded[2] or {}, _EMBED, "embed field")


def converted_refusal(message: Any, payload: Any) -> str | None:
    """Why a protocol-v1 (or hybrid) message must not run, or None; converted by Celery's own functions first."""
    if not isinstance(payload, dict):
        return "message body is neither a protocol-v2 [args, kwargs, embed] triple nor a protocol-v1 object"
    if nesting_exceeds(payload, MAX_NESTING):
        return f"message body is nested too deeply (more than {MAX_NESTING} levels)"
    headers = message.headers if isinstance(message.headers, dict) else {}
    try:
        # Celery converts a copy: the message's own payload is converted again by its strategy.
        hybrid = "task" in headers
        convert = hybrid_to_proto2 if hybrid else proto1_to_proto2
        (args, kwargs, embed), converted, _, _ = convert(message, dict(payload))
    except (InvalidTaskError, AttributeError, TypeError) as error:
        return f"protocol-v1 message: {error}"
    if not isinstance(args, list | tuple):
        return "protocol-v1 message: args must be a list"
    return v2_refusal([list(args), kwargs, embed], converted)


def headers_refusal(headers: Mapping[str, Any]) -> str | None:
    if "id" not in headers:
        return "message has no task id"
    unreadable = headers.get(UNREADABLE_HEADER)
    if unreadable is not None:
        return f"message headers could not be read: {_shown(unreadable, 300)}"
    problem = fields_refusal(headers, _HEADERS, "header")
    if problem:
        return problem
    for name in ("eta", "expires"):
        value = headers.get(name)
        if value is not None:
            try:
                maybe_iso8601(value)  # as Celery's `Request` parses it
            except (AttributeError, ValueError, TypeError, OverflowError) as error:
                return f"header {name!r} is not an ISO 8601 date-time ({_shown(value)}: {_shown(error)})"
    return None


def properties_refusal(properties: Any) -> str | None:
    if not isinstance(properties, dict):
        return "message properties are not an object"
    return fields_refusal(properties, _PROPERTIES, "property")


def fields_refusal(
    values: Mapping[str, Any], expected: Mapping[str, tuple[Callable[[Any], bool], str]], kind: str
) -> str | None:
    for name, (valid, description) in expected.items():
        if name in values and not valid(values[name]):
            return f"{kind} {name!r} must be {description}, not {_shown(values[name])}"
    return None


def nesting_exceeds(value: Any, limit: int, hint: bytes | str | None = None) -> bool:
    """Whether lists and objects in `value` nest deeper than `limit`, walked without recursion.

    `hint`, the JSON text `value` came from: each list or object of `value` opens with a bracket of
    the text, inside as many others as in `value`, so the text nests at least as deep. When the
    text is shallow enough (no more brackets than `limit`, or its depth counted at C speed by
    `_text_within`), so is `value`, and the walk is skipped: the common case, a chunk of 250 calls
    included. When the text is not (it may nest deeper than `value`, e.g. under a duplicate key
    that parsing dropped), the walk decides.
    """
    if hint is not None:
        opening = (b"[", b"{") if isinstance(hint, bytes) else ("[", "{")
        if hint.count(opening[0]) + hint.count(opening[1]) <= limit:  # type: ignore[arg-type]
            return False
        if _text_within(hint, limit):
            return False
    if not isinstance(value, _CONTAINERS):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return False


#: A JSON string literal: in valid JSON text every '"' outside a string opens one.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Every byte but the four brackets (deleted by `bytes.translate`).
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _text_within(text: bytes | str, limit: int) -> bool:
    """Whether the valid JSON `text` nests lists and objects no deeper than `limit`: its strings
    dropped and every other byte but brackets, then each pass takes away the innermost pairs
    (`[]`, `{}`: the lists and objects that hold no other), one level of depth per pass."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    elif json.detect_encoding(text) not in ("utf-8", "utf-8-sig"):
        return False  # UTF-16 or UTF-32: a byte of '"' or '[' may be half of another character
    # UTF-8 writes no byte below 0x80 as part of another character: the scan is exact on bytes.
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return True
        # NUL marks what this pass takes away (a bracket-only text has none), so that an object
        # emptied by taking its list away here is not taken in the same pass.
        brackets = brackets.replace(b"[]", b"\0").replace(b"{}", b"\0").replace(b"\0", b"")
    return not brackets


def _shown(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) and limit > 80 else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
