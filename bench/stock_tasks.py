"""The stock side of the benchmark: `math.add` as any Celery user would write it, nothing else.

Started by the bench as a plain `celery -A bench.stock_tasks worker` with Celery's defaults
(prefork, one process per CPU, events off, loglevel WARNING), on a Redis of its own whose URL
comes in `BENCH_STOCK_URL` (or a RabbitMQ broker there, with the results on `BENCH_STOCK_BACKEND`).
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "stock",
    broker=os.environ["BENCH_STOCK_URL"],
    backend=os.environ.get("BENCH_STOCK_BACKEND", os.environ["BENCH_STOCK_URL"]),
)


@app.task(name="math.add")
def add(x: int, y: int) -> int:
    return x + y
