"""A team's own catalog, end to end, as a new team meets it (issue 20): the `billing` contracts in
`tests/team/` checked and served by a real worker, called through the team's own typed client on
both faces (and none of the demo contracts), evolved compatibly with a clients-first rollout that
`task-client workers` lets through, and the command lines' error paths: each a one-line usage error
naming the problem, never a traceback and never a silent wait."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from task_client import ContractMismatch, TaskTimeout, UnknownTask
from task_contracts import ConnectionConfigError, export_contracts
from task_server.testing import RedisProcess, WorkerProcess
from tests.team import billing_v1, billing_v2
from tests.team.billing_v1 import Receipt
from tests.team.client import BillingClient, BillingClientV2

from ..conftest import REPO_ROOT
from ..strict_mypy import mypy_strict

pytestmark = pytest.mark.e2e

V1 = "tests.team.billing_v1:CATALOG"
V2 = "tests.team.billing_v2:CATALOG"
IMPLEMENTATIONS = "tests.team.tasks"
DEMO_ATTRIBUTES = ("add", "mul", "xsum", "div", "stats", "count_to")


def run(tool: str, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for name in ("TASK_BROKER_URL", "TASK_RESULT_BACKEND", "TASK_CATALOG"):
        environment.pop(name, None)
    if url:
        environment["TASK_BROKER_URL"] = url
    argv = [sys.executable, "-m", tool, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment)


def usage_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


@pytest.fixture
def billing_worker(private_redis: RedisProcess, tmp_path: Path) -> WorkerProcess:
    with WorkerProcess(
        private_redis.url,
        concurrency=1,
        catalog=V1,
        implementations=[IMPLEMENTATIONS],
        env={"PYTHONPATH": str(REPO_ROOT)},
        logdir=str(tmp_path),
    ) as worker:
        worker.start()
        yield worker


@pytest.mark.timeout(300)  # mypy --strict and a dozen command-line processes: minutes on a loaded machine
def test_a_team_catalog_from_declaration_to_a_compatible_rollout(
    private_redis: RedisProcess, billing_worker: WorkerProcess, tmp_path: Path
) -> None:
    url = private_redis.url
    # 1. The catalog checks, and mypy --strict accepts the stubs, the client and its calls as written.
    checked = run("task_server", "check", "--catalog", V1, "-I", IMPLEMENTATIONS)
    assert checked.returncode == 0 and checked.stdout.count("ok  billing.") == 2, checked.stderr
    stdout, status = mypy_strict("tests/team")
    assert status == 0, stdout

    # 2. The team's client, sync and asyncio faces, with its contracts only.
    with BillingClient(url) as client:
        assert client.charge("cust-1", 500) == Receipt(customer="cust-1", cents=500)
        assert asyncio.run(_async_calls(client)) == (Receipt(customer="cust-2", cents=-5), [2, 3])
        for face in (client, client.aio):
            assert [name for name in DEMO_ATTRIBUTES if hasattr(face, name)] == []
        with pytest.raises(UnknownTask, match="known: billing.charge, billing.close_month"):
            client.task_by_name("math.add")
        months = client.close_month.submit(4)
        assert months.result() == 4
        charged = client.charge.submit("cust-3", 700).id

    # 3. A compatible change rolled out clients first: `diff` and `workers` agree; only the
    # calls that use what is new are at risk, and they are refused by name, not lost.
    exports = [tmp_path / "v1", tmp_path / "v2"]
    export_contracts(exports[0], billing_v1.CATALOG)
    export_contracts(exports[1], billing_v2.CATALOG)
    diff = run("task_contracts._cli", "diff", str(exports[0]), str(exports[1]))
    assert diff.returncode == 0 and "[parameter-added-optional: compatible]" in diff.stdout, diff.stderr
    assert diff.stdout.endswith("1 change, 0 breaking\n")
    gate = run("task_client", "--catalog", V2, "workers", "--timeout", "2", url=url)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "WARNING  billing.charge: served with compatible differences only" in gate.stderr
    assert "parameter 'note' is not known to the worker: calls that pass it are refused" in gate.stderr
    with BillingClientV2(url) as newer:
        assert newer.charge("cust-4", 100) == Receipt(customer="cust-4", cents=100)
        with pytest.raises(ContractMismatch, match="note"):
            newer.charge("cust-4", 100, note="thanks")

    # 4. The command line on the team's catalog.
    cli = ("--catalog", V1)
    done = run("task_client", *cli, "call", "charge", "cust-5", "-5", url=url)  # a negative number
    assert (done.returncode, json.loads(done.stdout)) == (0, {"customer": "cust-5", "cents": -5, "note": None})
    started = time.monotonic()
    usage_error(run("task_client", *cli, "result", "typo-id", url=url), "no call with id 'typo-id' is queued")
    assert time.monotonic() - started < 10  # not the 10 s wait for a record that never comes
    cancelled = run("task_client", *cli, "cancel", "typo-id", url=url)
    assert (cancelled.returncode, cancelled.stdout) == (2, "typo-id: unknown\n"), cancelled.stderr
    wrong = run("task_client", *cli, "result", charged, "--contract", "close_month", url=url)
    usage_error(wrong, "does not fit --contract billing.close_month", '{"customer": "cust-3", "cents": 700')
    assert "the worker's result" not in wrong.stderr  # it used to blame the worker
    assert run("task_client", *cli, "result", charged, "--contract", "charge", url=url).returncode == 0


async def _async_calls(client: BillingClient) -> tuple[Receipt, list[int]]:
    receipt = await client.aio.charge("cust-2", -5)
    return receipt, await client.aio.close_month.map([(2,), {"customers": 3}])


def test_the_command_lines_error_paths_on_a_team_catalog(private_redis: RedisProcess) -> None:
    url = private_redis.url
    typo_url = "rediss://127.0.0.1:6380/0?ssl_cert_req=required"
    with pytest.raises(ConnectionConfigError, match="unknown query option 'ssl_cert_req'"):
        BillingClient(typo_url)  # at construction, not at the first call
    named = "unknown query option 'ssl_cert_req'; did you mean 'ssl_cert_reqs'?"
    usage_error(run("task_client", "--catalog", V1, "--broker-url", typo_url, "call", "charge", "c", "1"), named)
    usage_error(run("task_server", "worker", "--catalog", V1, "-I", IMPLEMENTATIONS, "--broker-url", typo_url), named)
    usage_error(
        run("task_server", "worker", "--catalog", V1, "-I", "tests.team.taskz", "--broker-url", url),
        "no module named 'tests.team.taskz'",
    )
    usage_error(
        run(
            "task_server", "worker", "--catalog", V1, "-I", IMPLEMENTATIONS, "--queues", "bilingg", "--broker-url", url
        ),
        "'bilingg': no contract of the catalog uses it; known: billing, celery",
    )
    usage_error(run("task_server", "dev", "--catalog", V1, "-I", IMPLEMENTATIONS, "--port", str(private_redis.port)))
    usage_error(run("task_client", "--catalog", V1, "call", "charge", "c", "1", "--timout", "3", url=url))
    # No worker: a short `workers` bound is kept (it was at least the 1 s of kombu's Redis poll).
    with BillingClient(url) as client:
        started = time.monotonic()
        assert client.workers(timeout=0.1) == []
        assert time.monotonic() - started < 1.0
        with pytest.raises(TaskTimeout):
            client.charge.with_options(timeout=0.2)("nobody-serves", 1)
