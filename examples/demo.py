"""`make demo`: `task-server dev` (an embedded Redis and a worker), and a client calling it by name.

With `TASK_BROKER_URL` set, a plain `task-server worker` on that Redis instead. Everything started
here is stopped on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from task_client import TaskClient, TaskError
from task_server.testing import DevProcess, WorkerProcess


def main() -> int:
    external = os.environ.get("TASK_BROKER_URL")
    server = WorkerProcess(external, concurrency=2) if external else DevProcess(concurrency=2)
    with server:
        started = time.monotonic()
        server.start()
        url = external or server.url  # type: ignore[union-attr]
        print(f"{'task-server worker' if external else 'task-server dev'} ready in {time.monotonic() - started:.1f} s")
        if not external:
            print(f"  export TASK_BROKER_URL={url}")
        with TaskClient(url) as client:
            for text, call in (
                ("client.add(4, 7)", lambda: client.add(4, 7)),
                ("client.mul(4, 7)", lambda: client.mul(4, 7)),
                ("client.xsum([1, 2, 3])", lambda: client.xsum([1, 2, 3])),
                ('client.add("four", 7)', lambda: client.add("four", 7)),  # type: ignore[arg-type]
                ("client.div(1, 0)", lambda: client.div(1, 0)),
            ):
                try:
                    print(f"{text} = {call()!r}")
                except TaskError as error:
                    print(f"{text} raised {type(error).__name__}: {error}")
        server.signal(signal.SIGINT)  # what Ctrl-C does: the worker shuts down, then its Redis
        assert server.process is not None
        server.process.wait(timeout=60)
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
