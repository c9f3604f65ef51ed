"""How many bytes a message's text took on the wire (a leaf module: `_internals` counts with it too)."""

from __future__ import annotations


def text_bytes(text: str | bytes) -> int:
    """The UTF-8 length of `text` (a str's, counted only when it is not ASCII: `isascii` costs nothing)."""
    if isinstance(text, bytes) or text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
