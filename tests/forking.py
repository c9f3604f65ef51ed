"""What a forked child of the test process reports, for tests of state a child must not inherit."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable


def reported_by_forked_child(report: Callable[[], str], timeout: float = 60.0) -> str:
    """Fork; the child writes `report()` to a pipe and leaves at once (no test teardown runs there),
    or writes "raised <error>" if it raised; the parent reads it and waits for the child. A child
    that has not reported within `timeout` seconds is killed: "no report within <timeout> s"."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                reported = report()
            except BaseException as error:
                reported = f"raised {error!r}"
            os.write(write, reported.encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([read], [], [], left)[0]:
            chunk = os.read(read, 65536)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)
        os.kill(pid, signal.SIGKILL)
        return f"no report within {timeout:g} s"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
