"""The stock side of the benchmark: `math.add` as any Celery user would write it, nothing else.

Started by the bench as a plain `celery -A bench.stock_tasks worker` with Celery's defaults
(prefork, one process per CPU, events off, loglevel WARNING), on a Redis of its own whose URL
comes in `BENCH_STOCK_URL` (or a RabbitMQ broker there, with the results on `BENCH_STOCK_BACKEND`).
With `BENCH_STOCK_DURABLE` set (RabbitMQ), the queues it is told to consume are created as quorum
queues and what it publishes is confirmed: the durability our side keeps, in Celery's own words.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "stock",
    broker=os.environ["BENCH_STOCK_URL"],
    backend=os.environ.get("BENCH_STOCK_BACKEND", os.environ["BENCH_STOCK_URL"]),
)
if os.environ.get("BENCH_STOCK_DURABLE"):
    # As `bench._stock.stock_app(durable=True)` sets them for its callers.
    app.conf.update(task_create_missing_queue_type="quorum", broker_transport_options={"confirm_publish": True})


@app.task(name="math.add")
def add(x: int, y: int) -> int:
    return x + y
