"""`task-server` as a server team runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from task_contracts import CATALOG

FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(FIXTURES)}
    return subprocess.run(
        [sys.executable, "-m", "task_server", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_check_lists_every_contract_with_its_fingerprint() -> None:
    done = run_cli("check")
    assert done.returncode == 0, done.stderr
    assert "ok  math.add(x: int, y: int) -> int  queue=math  fingerprint=" in done.stdout
    assert done.stdout.count("ok  ") == len(CATALOG)


def test_check_refuses_missing_and_mismatched_implementations() -> None:
    done = run_cli("check", "--implementations", "wrong_impls")
    assert done.returncode == 3
    assert "math.add: parameter 'y' is str in the implementation, int in the contract" in done.stderr
    assert "math.xsum: no implementation" in done.stderr


def test_worker_refuses_to_start_with_a_mismatched_implementation() -> None:
    # Port 9 is closed: the refusal must come before any broker connection.
    done = run_cli("worker", "--broker-url", "redis://127.0.0.1:9/0", "--implementations", "wrong_impls")
    assert done.returncode == 3
    assert "math.xsum: no implementation" in done.stderr


def test_worker_rejects_a_non_redis_broker_url_as_usage_error() -> None:
    done = run_cli("worker", "--broker-url", "amqp://guest:secret@localhost//")
    assert done.returncode == 2
    assert "amqp" in done.stderr and "secret" not in done.stderr


def test_help_documents_every_option() -> None:
    done = run_cli("worker", "--help")
    assert done.returncode == 0
    for option in (
        "--broker-url",
        "--result-backend",
        "--concurrency",
        "--autoscale",
        "--queues",
        "--hostname",
        "--default-queue",
        "--no-default-queue",
        "--loglevel",
        "--pool",
    ):
        assert option in done.stdout


def test_worker_refuses_a_malformed_autoscale_before_connecting() -> None:
    for value in ("1,3", "x,1", "0", "4,2,1"):
        done = run_cli("worker", "--broker-url", "redis://127.0.0.1:9/0", "--autoscale", value)
        assert done.returncode == 2, value
        assert "MAX,MIN" in done.stderr, done.stderr


def test_worker_refuses_autoscale_without_the_prefork_pool() -> None:
    done = run_cli("worker", "--broker-url", "redis://127.0.0.1:9/0", "--autoscale", "4,1", "--pool", "threads")
    assert done.returncode == 2
    assert "--autoscale needs the prefork pool" in done.stderr
