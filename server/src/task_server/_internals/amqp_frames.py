"""py-amqp's decoding of a delivered message's properties, where a hostile header can stop a worker.

py-amqp decodes a message's properties (its AMQP headers among them) inside the connection's
`drain_events`, before kombu or Celery see the message. Some values raise there: a table nested
about a thousand deep (`RecursionError`), a timestamp no `datetime` holds, an unknown field type, a
property string that is not UTF-8. The error left the event loop, the worker stopped
("Unrecoverable error"), and RabbitMQ gave the message to the next worker, which stopped too.

Only when py-amqp's own decoding fails are the properties read again here, tolerantly: each value
that cannot be read (or is nested deeper than `MAX_NESTING`) becomes a short text saying why, and
the headers get `UNREADABLE_HEADER` listing the problems, so that the worker refuses the message
(`_message_checks`) with a record for its id, or drops it with a log line when no id is readable.

Written against py-amqp 5.4.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from struct import error as StructError
from struct import unpack_from
from typing import Any

from amqp.serialization import GenericContent
from amqp.spec import Basic

RELIED_ON: tuple[tuple[type, str], ...] = ((GenericContent, "_load_properties"),)

#: The header added to a message whose headers py-amqp could not read: what could not be read, and why.
UNREADABLE_HEADER = "x-task-sdk-unreadable"
#: Attribute of a kombu message (either broker): its size as the worker received it, body, headers
#: and properties (`_message_checks.received_size_refusal`).
RECEIVED_BYTES = "task_sdk_received_bytes"
#: Key added to a delivered message's properties: the size of its content header frame (properties
#: and headers as received); taken out again as the message reaches kombu (`amqp_acks`).
HEADER_FRAME_BYTES = "x-task-sdk-header-frame-bytes"
#: Deepest nesting of tables and arrays read (deeper values are unreadable), as for JSON bodies.
MAX_NESTING = 100

_FIXED: dict[str, tuple[str, int]] = {
    "s": (">h", 2),
    "b": (">b", 1),
    "B": (">B", 1),
    "U": (">h", 2),
    "u": (">H", 2),
    "I": (">i", 4),
    "i": (">I", 4),
    "L": (">q", 8),
    "l": (">q", 8),
    "f": (">f", 4),
    "d": (">d", 8),
    "t": (">B", 1),
    "T": (">Q", 8),
}
_SIZED = ("S", "x", "F", "A")  # a 4-byte length, then that many bytes
_DECODE_ERRORS = (ValueError, OverflowError, OSError, IndexError, StructError, RecursionError, TypeError)


class _Reader:
    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = bytes(buf)
        self.problems: list[str] = []

    def item(self, offset: int, path: str, depth: int) -> tuple[Any, int]:
        kind = chr(self.buf[offset])
        offset += 1
        if kind in _SIZED:
            (size,) = unpack_from(">I", self.buf, offset)
            start, end = offset + 4, offset + 4 + size
            if end > len(self.buf):
                raise ValueError(f"{path}: a value runs past the end of the frame")
            if kind in ("F", "A") and depth >= MAX_NESTING:
                return self.unreadable(path, f"nested deeper than {MAX_NESTING} levels"), end
            if kind == "F":
                return self.table(start, end, path, depth + 1), end
            if kind == "A":
                return self.array(start, end, path, depth + 1), end
            raw = self.buf[start:end]
            if kind == "x":
                return raw, end
            try:
                return raw.decode("utf-8"), end
            except UnicodeDecodeError:
                return raw, end  # as py-amqp keeps it
        if kind == "D":
            places, number = unpack_from(">Bi", self.buf, offset)
            return f"{number}e-{places}", offset + 5
        if kind == "V":
            return None, offset
        fixed = _FIXED.get(kind)
        if fixed is None:
            raise ValueError(f"{path}: unknown field type {kind!r}")
        (value,) = unpack_from(fixed[0], self.buf, offset)
        offset += fixed[1]
        if kind == "t":
            return bool(value), offset
        if kind == "T":
            try:
                return dt.datetime.fromtimestamp(value, tz=dt.UTC).replace(tzinfo=None), offset
            except _DECODE_ERRORS:
                return self.unreadable(path, f"timestamp {value} is no date"), offset
        return value, offset

    def table(self, offset: int, end: int, path: str, depth: int) -> dict[Any, Any]:
        found: dict[Any, Any] = {}
        while offset < end:
            (size,) = unpack_from(">B", self.buf, offset)
            raw = self.buf[offset + 1 : offset + 1 + size]
            offset += 1 + size
            key: Any = raw.decode("utf-8", "backslashreplace")
            where = f"{path}.{key}" if path else key
            try:
                found[key], offset = self.item(offset, where, depth)
            except _DECODE_ERRORS as error:
                found[key] = self.unreadable(where, str(error))
                break  # its length is unknown: the rest of this table cannot be found
        return found

    def array(self, offset: int, end: int, path: str, depth: int) -> list[Any]:
        found: list[Any] = []
        while offset < end:
            try:
                value, offset = self.item(offset, f"{path}[{len(found)}]", depth)
            except _DECODE_ERRORS as error:
                found.append(self.unreadable(f"{path}[{len(found)}]", str(error)))
                break
            found.append(value)
        return found

    def unreadable(self, path: str, why: str) -> str:
        self.problems.append(f"{path or 'headers'}: {why}"[:200])
        return f"<unreadable: {why[:80]}>"

    def short_string(self, offset: int, name: str) -> tuple[str | None, int]:
        (size,) = unpack_from(">B", self.buf, offset)
        raw = self.buf[offset + 1 : offset + 1 + size]
        try:
            return raw.decode("utf-8"), offset + 1 + size
        except UnicodeDecodeError:
            self.problems.append(f"property {name}: not UTF-8")
            return None, offset + 1 + size


# Basic's properties in flag order: (flag, name, kind); "s" a short string, "F" the headers table.
_BASIC = (
    (0x8000, "content_type", "s"),
    (0x4000, "content_encoding", "s"),
    (0x2000, "application_headers", "F"),
    (0x1000, "delivery_mode", "B"),
    (0x0800, "priority", "B"),
    (0x0400, "correlation_id", "s"),
    (0x0200, "reply_to", "s"),
    (0x0100, "expiration", "s"),
    (0x0080, "message_id", "s"),
    (0x0040, "timestamp", "Q"),
    (0x0020, "type", "s"),
    (0x0010, "user_id", "s"),
    (0x0008, "app_id", "s"),
    (0x0004, "cluster_id", "s"),
)


def read_basic_properties(buf: bytes | memoryview, offset: int, failure: Exception) -> tuple[dict[str, Any], int]:
    """Basic's properties, each value read if it can be; `failure`, what py-amqp's decoding raised."""
    reader = _Reader(buf)
    properties: dict[str, Any] = {}
    try:
        (flags,) = unpack_from(">H", reader.buf, offset)
        offset += 2
        for flag, name, kind in _BASIC:
            if not flags & flag:
                continue
            if kind == "s":
                value, offset = reader.short_string(offset, name)
                if value is not None:
                    properties[name] = value
            elif kind == "F":
                (size,) = unpack_from(">I", reader.buf, offset)
                properties[name] = reader.table(offset + 4, offset + 4 + size, "", 1)
                offset += 4 + size
            elif kind == "B":
                (properties[name],) = unpack_from(">B", reader.buf, offset)
                offset += 1
            else:
                (properties[name],) = unpack_from(">Q", reader.buf, offset)
                offset += 8
    except _DECODE_ERRORS as error:
        reader.problems.append(f"properties: {error}")
    headers = properties.get("application_headers")
    if not isinstance(headers, dict):
        headers = properties["application_headers"] = {}
    headers[UNREADABLE_HEADER] = "; ".join(reader.problems) or f"{type(failure).__name__}: {failure}"[:200]
    return properties, offset


_installed: list[Callable[..., Any]] = []


def guard_property_decoding() -> None:
    """Make py-amqp read again, tolerantly, the properties its own decoding fails on (once per process)."""
    if _installed:
        return
    original = GenericContent._load_properties
    _installed.append(original)

    def load_properties(self: Any, class_id: int, buf: Any, offset: int) -> int:
        try:
            offset = int(original(self, class_id, buf, offset))
        except Exception as failure:  # what a hostile frame raises has no common base
            if class_id != Basic.CLASS_ID:
                raise
            self.properties, offset = read_basic_properties(buf, offset, failure)
        self.properties[HEADER_FRAME_BYTES] = len(buf)  # for `--max-message-bytes` (`_intake`)
        return offset

    GenericContent._load_properties = load_properties
