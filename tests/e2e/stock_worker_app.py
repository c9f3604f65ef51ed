"""`math.add` served by a plain Celery worker, as a worker older than reply channels would serve it.

Started by `test_reply_channel` as `celery -A tests.e2e.stock_worker_app worker -Q math`, on the
broker and result backend in `STOCK_WORKER_URL`. It stores records the way Celery does, published on
`celery-task-meta-<id>` only, and never on a caller's reply channel.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("stock-worker", broker=os.environ["STOCK_WORKER_URL"], backend=os.environ["STOCK_WORKER_URL"])


@app.task(name="math.add")
def add(x: int, y: int) -> int:
    return x + y
