"""Worker settings that trade nothing of safety for speed: result lifetimes and thread-served contracts."""

from __future__ import annotations

import subprocess
import sys

from task_contracts import CATALOG, math, resolve_urls
from task_server import WorkerSettings
from task_server._app import celery_config
from task_server._backend import RESULT_TTLS_SETTING
from task_server._threads import THREADS_SETTING

URLS = resolve_urls("redis://127.0.0.1:6379/0")


def test_each_contract_and_its_chunks_keep_records_for_the_contracts_lifetime() -> None:
    ttls = celery_config(WorkerSettings(urls=URLS), CATALOG)[RESULT_TTLS_SETTING]
    assert ttls["math.add"] == ttls["math.add:chunk"] == math.add.result_ttl
    assert set(ttls) == {name for item in CATALOG for name in (item.name, item.name + ":chunk")}


def test_the_worker_flag_overrides_every_lifetime() -> None:
    ttls = celery_config(WorkerSettings(urls=URLS, result_ttl=5), CATALOG)[RESULT_TTLS_SETTING]
    assert set(ttls.values()) == {5}


def test_threads_serve_light_contracts_only_beside_a_process_pool() -> None:
    assert celery_config(WorkerSettings(urls=URLS), CATALOG)[THREADS_SETTING] == 8
    assert celery_config(WorkerSettings(urls=URLS, threads=0), CATALOG)[THREADS_SETTING] == 0
    assert celery_config(WorkerSettings(urls=URLS, pool="threads"), CATALOG)[THREADS_SETTING] == 0


def test_worker_help_documents_threads_and_result_lifetime() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "task_server", "worker", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "--threads" in done.stdout and "cpu_bound=False" in done.stdout
    assert "--result-ttl" in done.stdout and "300 s" in done.stdout


def test_a_non_idempotent_contract_whose_records_expire_before_redelivery_is_warned_about() -> None:
    from task_server._app import result_ttls
    from task_server._deliveries import lifetime_warnings

    short = result_ttls(WorkerSettings(urls=URLS, result_ttl=10), CATALOG)
    warnings = lifetime_warnings(300, short, CATALOG)
    assert [w.split()[0] for w in warnings] == [item.name for item in CATALOG if not item.idempotent]
    assert lifetime_warnings(300, result_ttls(WorkerSettings(urls=URLS), CATALOG), CATALOG) == []
