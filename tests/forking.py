"""What a forked child of the test process reports, for tests of state a child must not inherit."""

from __future__ import annotations

import os
from collections.abc import Callable


def reported_by_forked_child(report: Callable[[], str]) -> str:
    """Fork; the child writes `report()` to a pipe and leaves at once (no test teardown runs there);
    the parent reads it and waits for the child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, report().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    os.waitpid(pid, 0)
    return reported
