"""The prefetch window a default RabbitMQ worker asks for (`task_server._prefetch`), read back from
the broker: Celery's 4 per pool process, and 4 per thread serving contracts declared
`cpu_bound=False` (on Celery's 8 for two processes, 32 concurrent callers left 24 messages waiting
in the queue while the worker idled)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from task_server._threads import DEFAULT_THREADS
from task_server.testing import RabbitMQProcess, RedisProcess, WorkerProcess, wait_until

from ..catalog import serving

pytestmark = pytest.mark.e2e


def _prefetch_counts(rabbitmq: RabbitMQProcess, url: str) -> dict[str, int]:
    vhost = unquote(urlsplit(url).path.removeprefix("/"))
    listed = rabbitmq.ctl("list_consumers", "-p", vhost, "queue_name", "prefetch_count", "--no-table-headers").stdout
    rows = (line.split("\t") for line in listed.splitlines() if "\t" in line)
    return {queue: int(count) for queue, count in rows}


@pytest.mark.parametrize(
    ("extra_args", "expected"),
    [((), 4 * (2 + DEFAULT_THREADS)), (("--prefetch-multiplier", "1"), 2)],
    ids=["default-counts-the-threads", "explicit-multiplier-as-celery"],
)
def test_a_rabbitmq_worker_reserves_ahead_for_its_threads_unless_told_otherwise(
    rabbitmq: RabbitMQProcess, private_redis: RedisProcess, tmp_path: Path, extra_args: tuple[str, ...], expected: int
) -> None:
    vhost, url = rabbitmq.fresh_vhost("prefetch")
    try:
        with WorkerProcess(
            url,
            concurrency=2,
            result_backend=private_redis.url,
            logdir=str(tmp_path),
            extra_args=extra_args,
            **serving(),
        ) as worker:
            worker.start()
            counts: dict[str, int] = {}

            def consuming() -> bool:
                counts.update(_prefetch_counts(rabbitmq, url))
                return "diagnostics" in counts

            wait_until(consuming, 60, "the worker's consumer on the diagnostics queue", interval=0.5)
            assert counts["diagnostics"] == expected
    finally:
        rabbitmq.delete_vhost_later(vhost)
