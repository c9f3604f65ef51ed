"""`make demo`: an embedded Redis, one `task-server worker`, and a client calling it by name.

Everything started here is stopped on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import sys
import time

from task_client import TaskClient, TaskError
from task_server.testing import RedisProcess, WorkerProcess


def main() -> int:
    external = os.environ.get("TASK_BROKER_URL")
    redis = None if external else RedisProcess()
    try:
        if redis is not None:
            redis.start()
            print(f"embedded redis-server on {redis.url}")
        url = external or redis.url  # type: ignore[union-attr]
        with WorkerProcess(url, concurrency=2) as worker:
            started = time.monotonic()
            worker.start()
            print(f"task-server worker {worker.hostname} ready in {time.monotonic() - started:.1f} s")
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
        print("worker stopped")
    finally:
        if redis is not None:
            redis.stop()
            print("redis-server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
