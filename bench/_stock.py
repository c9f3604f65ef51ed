"""The stock reference: a plain `celery worker` with Celery's defaults, on a Redis of its own."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from celery import Celery

from task_server.testing import ProcessError

ROOT = Path(__file__).resolve().parent.parent


#: The queue of the durable stock side (RabbitMQ): created by its worker as a quorum queue.
DURABLE_QUEUE = "math"


def stock_app(url: str, backend: str | None = None, *, durable: bool = False) -> Celery:
    """The caller's side as a Celery user writes it: broker and result backend, nothing else.

    `durable` (RabbitMQ): publisher confirms, and queues Celery creates are quorum queues, as our
    side has them; such a caller must name `DURABLE_QUEUE` (a default queue would be declared classic).
    """
    app = Celery("stock-caller", broker=url, backend=backend or url, set_as_current=False)
    if durable:
        # As bench/stock_tasks.py sets them for the durable stock worker.
        app.conf.update(task_create_missing_queue_type="quorum", broker_transport_options={"confirm_publish": True})
    return app


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no stray worker


class StockWorker:
    """`celery -A bench.stock_tasks worker`: prefork, one process per CPU, events off, loglevel WARNING."""

    def __init__(self, url: str, log_path: Path, backend: str | None = None, *, durable: bool = False) -> None:
        """`durable`: consume `DURABLE_QUEUE` as a quorum queue and publish with confirms (RabbitMQ)."""
        self.url = url
        self.backend = backend or url
        self.log_path = log_path
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StockWorker:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> StockWorker:
        env = {**os.environ, "BENCH_STOCK_URL": self.url, "BENCH_STOCK_BACKEND": self.backend, "PYTHONPATH": str(ROOT)}
        queues = ["-Q", DURABLE_QUEUE] if self.durable else []
        if self.durable:
            env["BENCH_STOCK_DURABLE"] = "1"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.stock_tasks", "worker", *queues],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        caller = stock_app(self.url, self.backend, durable=self.durable)
        queue = DURABLE_QUEUE if self.durable else None
        deadline = time.monotonic() + timeout
        try:
            while True:  # ready once it answers a call (its log says little at WARNING)
                if self.process.poll() is not None:
                    raise ProcessError(f"stock worker exited: {self.log_path.read_text()[-2000:]}")
                try:
                    if caller.send_task("math.add", args=[1, 1], queue=queue).get(timeout=2) == 2:
                        return self
                except Exception as error:  # still starting: the call stays PENDING
                    if time.monotonic() > deadline:
                        raise ProcessError(f"stock worker not answering after {timeout:g} s: {error}") from None
        finally:
            caller.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
