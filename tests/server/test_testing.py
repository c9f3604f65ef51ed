"""The process helpers never leave a redis-server or worker behind, even when their starter is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from task_server.testing import wait_until

STARTER = (
    "import time\n"
    "from task_server.testing import RedisProcess\n"
    "redis = RedisProcess().start()\n"
    "print(redis.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_redis_server_dies_with_the_process_that_started_it() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    redis_pid = int(starter.stdout.readline())
    assert not _gone(redis_pid)
    os.kill(starter.pid, signal.SIGKILL)  # no chance to run its own clean-up
    starter.wait(timeout=10)
    starter.stdout.close()
    wait_until(lambda: _gone(redis_pid), 10, "the orphaned redis-server to exit")
