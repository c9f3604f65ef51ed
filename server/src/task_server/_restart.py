"""A worker whose threads are held by too many overruns restarts itself (`--max-leaked-threads`).

A hung thread cannot be stopped, only left behind (`_watched_threads`), and each one keeps its
memory and sockets. Past the cap the worker asks Celery for its ordinary warm shutdown (SIGTERM to
itself): it stops consuming, lets the calls that have not overrun finish, and closes its broker
connection, which puts every message it took and did not acknowledge back on its queue (the
overrun calls and those still waiting for a thread: acks are late). `task-server worker` then
executes itself again with the same command line (`os.execv`): the same process id, so a
supervisor (systemd, Kubernetes, a test fixture) sees no exit, and no supervisor is needed.
An overrun call comes back as a redelivery: an idempotent one runs again (up to
`--max-deliveries`), one that is not stores `OutcomeUnknown`, as after a crash.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)

_requested = threading.Event()


def request_restart() -> None:
    """Ask for a warm shutdown followed by a restart (from any thread; once)."""
    if _requested.is_set():
        return
    _requested.set()
    logger.error("restarting this worker: its unacknowledged messages go back to their queues first")
    os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown, as an operator's SIGTERM


def restart_if_requested() -> None:
    """Once the worker has shut down: run the same command again in this process, if asked to."""
    if not _requested.is_set():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)
