"""Tokens unique among all worker processes and hosts, made cheaply: a random prefix per process
(renewed in a forked child, which would otherwise repeat its parent's) and a count."""

from __future__ import annotations

import itertools
import os
import secrets

_prefix = secrets.token_hex(8)
_numbers = itertools.count(1)


def _new_prefix() -> None:
    global _prefix
    _prefix = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_prefix)


def unique_token() -> str:
    """A new token of letters and digits, never made before by any process (cheaper than a random
    token each time)."""
    return f"{_prefix}x{next(_numbers)}"
