"""`task-client` as a user runs it: subprocesses against a real Redis and real workers."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Sequence

import pytest

from task_contracts import CATALOG
from task_server.testing import RedisProcess, WorkerProcess, free_port

from ..catalog import CATALOG as TEST_CATALOG
from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def task_client(
    *args: str, url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv: Sequence[str] = [sys.executable, "-m", "task_client", *(["--broker-url", url] if url else []), *args]
    environment = {**os.environ, **(env or {})}
    if url:
        environment.pop("TASK_BROKER_URL", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment)


@pytest.fixture
def url(redis_url: str, worker: WorkerProcess) -> str:
    return redis_url


def test_call_prints_the_result(url: str) -> None:
    done = task_client("call", "add", "4", "7", url=url)
    assert (done.returncode, done.stdout) == (0, "11\n"), done.stderr
    assert task_client("call", "math.xsum", "[1, 2, 3]", url=url).stdout == "6\n"
    assert task_client("call", "div", "7", "-p", "y=2", url=url).stdout == "3.5\n"
    negative = task_client("call", "add", "-4", "-7", url=url)  # numbers, not options
    assert (negative.returncode, negative.stdout) == (0, "-11\n"), negative.stderr
    assert task_client("call", "div", "-1.5e1", "-.5", url=url).stdout == "30.0\n"


def test_broker_url_comes_from_the_environment(url: str) -> None:
    done = task_client("call", "mul", "6", "7", env={"TASK_BROKER_URL": url})
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr


def test_json_output_is_one_object(url: str) -> None:
    done = task_client("call", "add", "4", "7", "--json", url=url)
    payload = json.loads(done.stdout)
    assert payload["result"] == 11 and payload["status"] == "SUCCESS" and payload["contract"] == "math.add"
    failed = task_client("call", "div", "1", "0", "--json", url=url)
    error = json.loads(failed.stdout)
    assert error["status"] == "FAILURE" and error["error"]["remote_type"] == "ZeroDivisionError"
    assert error["task_id"]


def test_no_wait_prints_the_id_and_result_fetches_it_later(url: str) -> None:
    published = task_client("call", "add", "20", "22", "--no-wait", url=url)
    assert published.returncode == 0, published.stderr
    task_id = published.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id)
    assert task_client("result", task_id, "--contract", "add", url=url).stdout == "42\n"
    raw = task_client("result", task_id, "--json", url=url)
    assert json.loads(raw.stdout) == {"task_id": task_id, "contract": None, "status": "SUCCESS", "result": 42}


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["call", "div", "1", "0"], 3, "ZeroDivisionError: float division by zero"),
        (["call", "add", "four", "7"], 2, "x: Input should be a valid integer"),
        (["call", "add", "1", "2", "3"], 2, "takes 2 positional arguments"),
        (["call", "add", "1", "-p", "q=2"], 2, "expected NAME=VALUE"),
        (["call", "nope", "1"], 2, "no contract named 'nope'"),
        (["call", "add", "1"], 2, "y: Field required"),
        (["call", "add", "1", "2", "--queue", "nobody-listens", "--timeout", "0.3"], 4, "task-client result "),
        (
            ["result", "00000000-0000-0000-0000-000000000000"],  # at once, not after 10 s
            2,
            "no call with id '00000000-0000-0000-0000-000000000000' is queued, running or finished",
        ),
        (["call", "add", "1", "2", "--timout", "3"], 2, "No such option"),
        (
            ["--catalog", "tests.client.changed_catalog:CATALOG", "call", "add", "1", "2", "-p", "z=5"],
            6,
            "parameter 'z' is not known to this worker",
        ),
        (["--catalog", "tests.client.changed_catalog:CATALOG", "call", "sub", "1", "2"], 6, "no worker serves"),
        (["--catalog", "no.such:CATALOG", "contracts"], 2, "--catalog"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_exit_codes_tell_what_went_wrong(url: str, args: list[str], code: int, text: str) -> None:
    done = task_client(*args, url=url)
    assert done.returncode == code, done.stdout + done.stderr
    assert text in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_broker_has_its_own_exit_code_and_no_password_shows() -> None:
    closed = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    for args in (["call", "add", "1", "2"], ["workers"], ["result", "00000000-0000-0000-0000-000000000000"]):
        done = task_client(*args, url=closed)
        assert done.returncode == 5, (args, done.stderr)
        assert "unavailable" in done.stderr and "s3cret" not in done.stderr + done.stdout


def test_progress_reports_are_shown_as_text_lines(url: str) -> None:
    done = task_client("call", "count_to", "3", "-p", "delay=0.4", "--progress", url=url)
    assert (done.returncode, done.stdout) == (0, "3\n"), done.stderr
    lines = done.stderr.splitlines()
    assert lines, "no progress shown"
    for line in lines:
        assert re.fullmatch(r"progress ([123])/3 \(\d+%\) counted to \1", line), line
    quiet = task_client("call", "count_to", "2", "-p", "delay=0.05", url=url)  # stderr is no terminal here
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_contracts_lists_signatures_queues_and_fingerprints() -> None:
    done = task_client("contracts")
    assert done.returncode == 0
    for item in CATALOG:
        assert f"{item.name}{item.signature_text()}" in done.stdout
        assert f"queue={item.queue}" in done.stdout and item.fingerprint in done.stdout
    listing = json.loads(task_client("contracts", "--json").stdout)["contracts"]
    assert [entry["name"] for entry in listing] == CATALOG.names()
    assert listing[0]["arguments_schema"]["required"] == ["x", "y"]


def test_workers_reports_what_each_worker_serves(url: str, worker: WorkerProcess) -> None:
    done = task_client("workers", "--timeout", "2", url=url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert worker.hostname in done.stdout
    for item in CATALOG:
        assert f"{item.name}  {item.fingerprint}" in done.stdout
    report = json.loads(task_client("workers", "--timeout", "2", "--json", url=url).stdout)
    (mine,) = [w for w in report["workers"] if w["hostname"] == worker.hostname]
    assert set(mine["queues"]) == {*TEST_CATALOG.queues(), "celery"}  # and Celery's default queue
    assert mine["versions"]["math.add"] == [1] and mine["versions"]["diagnostics.sleep"] == [1]
    assert "  versions: diagnostics.echo v1/v2, diagnostics.hold v1, " in done.stdout
    assert report["problems"] == {}


def test_workers_flags_contracts_no_worker_serves(private_redis: RedisProcess) -> None:
    with WorkerProcess(private_redis.url, concurrency=1, queues=["math"]) as math_only:
        math_only.start()
        done = task_client("workers", "--timeout", "2", url=private_redis.url)
        assert done.returncode == 6
        assert math_only.hostname in done.stdout
        assert "NOT SERVED  reports.count_to: implemented by" in done.stderr
        assert "no worker consumes queue 'reports'" in done.stderr
        changed = task_client(
            "--catalog", "tests.client.changed_catalog:CATALOG", "workers", "--json", url=private_redis.url
        )
        assert changed.returncode == 6
        report = json.loads(changed.stdout)
        assert report["problems"] == {"math.sub": "no worker implements it"}  # math.mul served as the client knows it
        # The client's math.add has a new optional z, compatible as `task-contracts diff` says: a
        # warning naming the calls at risk (those that pass z), not a failure.
        assert (
            "parameter 'z' is not known to the worker: calls that pass it are refused" in report["warnings"]["math.add"]
        )
        compatible_only = task_client(
            "--catalog", "tests.client.changed_catalog:COMPATIBLE", "workers", url=private_redis.url
        )
        assert compatible_only.returncode == 0, compatible_only.stderr
        assert "WARNING  math.add: served with compatible differences only: " in compatible_only.stderr
        assert "calls that pass it are refused" in compatible_only.stderr
        assert "NOT SERVED" not in compatible_only.stderr
    nobody = task_client("workers", "--timeout", "0.5", url=private_redis.url)
    assert nobody.returncode == 6 and "no worker replied within 0.5 s" in nobody.stdout


@pytest.mark.parametrize("command", [[], ["call"], ["result"], ["contracts"], ["workers"]])
def test_help_documents_every_command_and_the_exit_codes(command: list[str]) -> None:
    done = task_client(*command, "--help")
    assert done.returncode == 0
    assert "Exit status:" in done.stdout and "5  the broker or result backend cannot be reached" in done.stdout
    assert "Usage: task-client" in done.stdout


def test_on_a_terminal_progress_is_a_bar_redrawn_in_place(url: str) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "task_client", "--broker-url", url, "call", "count_to", "3", "-p", "delay=0.4"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            cwd=REPO_ROOT,
        )
        os.close(terminal)
        stdout, _ = process.communicate(timeout=60)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert (process.returncode, stdout) == (0, "3\n")
    text = shown.decode()
    assert re.search(r"\r\S*\[#*\.*\] [123]/3 +\d+%  counted to [123]", text), text
    assert "progress " not in text  # the bar, not the line form
