"""Random (version 4) UUIDs as text, for task ids and delivery tags: `str(uuid.uuid4())`, cheaper.

`uuid.uuid4()` asks the OS for 16 random bytes per id (one system call, which also lets other
threads take the GIL) and builds a `UUID` object only to print it. Here the OS's random bytes are
read for 256 ids at a time; each id is still 122 bits from `os.urandom`, used once. A forked child
reads its own bytes (a parent's unused ids must not repeat there).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_PER_READ = 256
# Version 4 and the RFC 4122 variant, as `uuid.UUID(bytes=..., version=4)` sets them.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)

# A deque's appends and pops are thread-safe: each value is handed out once, whichever threads
# take ids at once (two that find it empty together both refill it: more ids, none repeated).
_values: deque[int] = deque()
#: Forks between the process that imported this module and this one: anything holding ids made
#: ahead notes this number with them and drops those made in another process.
forks = 0


def _forked() -> None:
    global forks
    forks += 1
    _values.clear()


os.register_at_fork(after_in_child=_forked)


def new_id() -> str:
    """A new random UUID as text, e.g. `'0b7e3c9a-5d1f-4e2b-9c3d-7a8b6f5e4d3c'`; any thread."""
    while True:
        try:
            value = _values.popleft()
            break
        except IndexError:
            data = os.urandom(16 * _PER_READ)
            _values.extend(
                int.from_bytes(data[start : start + 16]) & _CLEAR | _SET for start in range(0, len(data), 16)
            )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class MadeAhead(Generic[T]):
    """A value made ahead of its use (`prepare`, while a call waits) and taken by the next user
    (`take`), or made then if none waits. Each goes to one taker, whichever threads take (a list's
    append and pop are atomic; threads that find none at once make one each), and a forked child
    never takes one its parent made (`forks`)."""

    __slots__ = ("_make", "_spare")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._spare: list[tuple[int, T]] = []  # (the fork count it was made at, the value)

    def prepare(self) -> None:
        """Make the next value now, unless one waits already (one is enough for a sequential caller)."""
        if not self._spare:
            self._spare.append((forks, self._make()))

    def take(self) -> T:
        try:
            made_at, value = self._spare.pop()
            if made_at == forks:
                return value
        except IndexError:
            pass
        return self._make()

    def waiting(self) -> list[T]:
        """The values made ahead and not taken yet (for inspection)."""
        return [value for _, value in self._spare]
