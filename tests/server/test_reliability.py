"""Redelivery policy and message intake, without Redis (the end-to-end proofs are in tests/e2e)."""

from __future__ import annotations

import pickle

from task_contracts import CATALOG, resolve_urls
from task_server import WorkerSettings, create_app
from task_server._app import celery_config
from task_server._deliveries import redelivery_warnings, transport_options
from task_server._message_checks import body_refusal, v2_refusal
from task_server._transport import GuardedConnection, GuardedTransport

from ..catalog import CATALOG as TEST_CATALOG
from .test_cli import run_cli

JSON = {"application/json"}
URLS = resolve_urls("redis://127.0.0.1:9/0")


def test_every_contract_task_is_acknowledged_late_and_requeued_when_its_process_dies() -> None:
    app = create_app(WorkerSettings(urls=URLS))
    for item in CATALOG:
        task = app.tasks[item.name]
        assert task.acks_late and task.reject_on_worker_lost, item.name
        assert task.Strategy == "task_server._intake:guarded_strategy"


def test_visibility_timeout_tunes_kombu_so_a_lost_task_comes_back_after_it() -> None:
    # The figures measured in CELERY-FACTS.md: interval 2, throttle 1, timeout 10 => about 10 s.
    assert transport_options(10) == {
        "visibility_timeout": 10,
        "unacked_restore_interval": 2.0,
        "unacked_restore_throttle": 1,
    }
    assert transport_options(300)["unacked_restore_interval"] == 10.0
    config = celery_config(WorkerSettings(urls=URLS, visibility_timeout=42), CATALOG)
    assert config["broker_transport_options"]["visibility_timeout"] == 42
    assert config["result_backend_always_retry"] is True


def test_a_visibility_timeout_within_a_contract_bound_is_warned_about() -> None:
    assert redelivery_warnings(300, CATALOG) == []
    warnings = redelivery_warnings(10, CATALOG)
    assert any("math.add's bound (10 s)" in line for line in warnings)
    assert not any("diagnostics.hold" in line for line in redelivery_warnings(31, TEST_CATALOG))
    assert any("diagnostics.hold" in line for line in redelivery_warnings(29, TEST_CATALOG))


def refusal(content_type: object, body: bytes, limit: int, accepted: set[str]) -> str | None:
    problem, decoded = body_refusal(content_type, body, limit, accepted)
    return problem or v2_refusal(decoded, {"id": "x", "task": "math.add"})


def test_refusal_names_what_is_wrong_with_a_message() -> None:
    assert refusal("application/json", b"[[1, 2], {}, {}]", 100, JSON) is None
    assert refusal("application/json", b"[[1, 2], {}, null]", 100, JSON) is None
    assert "16 bytes, more than this worker accepts (10 bytes" in str(
        refusal("application/json", b"[[1, 2], {}, {}]", 10, JSON)
    )
    pickled = pickle.dumps(((1, 2), {}, {}))
    assert "'application/x-python-serialize' is not accepted" in str(
        refusal("application/x-python-serialize", pickled, 1000, JSON)
    )
    assert "content type ['application/json'] is not accepted" in str(refusal(["application/json"], b"[]", 100, JSON))
    assert "not valid JSON" in str(refusal("application/json", b"[[1, 2]", 100, JSON))
    assert "triple" in str(refusal("application/json", b"[[1, 2], {}]", 100, JSON))
    assert "triple" in str(refusal("application/json", b'[{"x": 1}, {}, {}]', 100, JSON))


def test_worker_help_documents_the_reliability_settings() -> None:
    done = run_cli("worker", "--help")
    for option, env in (
        ("--visibility-timeout", "TASK_VISIBILITY_TIMEOUT"),
        ("--max-deliveries", "TASK_MAX_DELIVERIES"),
        ("--max-message-bytes", "TASK_MAX_MESSAGE_BYTES"),
    ):
        assert option in done.stdout and env in done.stdout
    refused = run_cli("worker", "--max-deliveries", "0")
    assert refused.returncode == 2 and "--max-deliveries" in refused.stderr


def test_the_worker_reads_its_queues_through_the_guarded_transport_for_redis_and_rediss() -> None:
    app = create_app(WorkerSettings(urls=URLS))
    with app.connection_for_read() as connection:
        assert connection.get_transport_cls() is GuardedTransport
    with GuardedConnection("rediss://127.0.0.1:9/0", ssl={"ssl_cert_reqs": "required"}) as secure:
        assert secure.get_transport_cls() is GuardedTransport
        assert secure.transport_cls == "rediss"  # kombu's TLS handling still sees its scheme
