"""`task-server beat`: Celery beat running the schedules declared beside the contracts.

Only one beat fires at a time. Each beat process competes for a lease in Redis (a redis-py `Lock`
with an expiry): the holder renews it every third of the lease and fires; the others stay idle
and try again as often. A beat that dies without releasing it (SIGKILL, lost machine) loses it when
the lease expires, so another beat takes over within `lease + lease / 3` seconds. A beat stopped
with SIGTERM or Ctrl-C releases it at once.

State lives in Redis, never in a file: the time each schedule last fired is kept in a hash beside
the lock, so a beat that takes over neither fires again what the last leader just fired nor waits
a whole interval for what the last leader missed (a missed run fires once, at takeover).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
import redis.exceptions
from celery import Celery
from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import crontab

from task_contracts import ConnectionUrls, ContractCatalog, Schedule, redact_url, schedule_problems
from task_contracts.wire import SHAPE_HEADER

from ._errors import ScheduleError

#: Seconds a leader's lease lasts unless renewed; a dead leader is replaced within 4/3 of it.
DEFAULT_LEASE = 10.0
DEFAULT_LOCK_KEY = "task-server:beat"
#: Dotted path Celery instantiates as the beat's scheduler.
SCHEDULER = f"{__name__}:LeaderScheduler"

_LEASE_SETTING = "task_sdk_beat_lease"
_LOCK_KEY_SETTING = "task_sdk_beat_lock_key"
_LOCK_URL_SETTING = "task_sdk_beat_lock_url"
# Everything the lock's Redis can raise when it is down, frozen or the lease was taken meanwhile.
_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatSettings:
    urls: ConnectionUrls
    lease: float = DEFAULT_LEASE
    lock_key: str = DEFAULT_LOCK_KEY
    loglevel: str = "INFO"


def create_beat_app(settings: BeatSettings, schedules: Sequence[Schedule], catalog: ContractCatalog) -> Celery:
    """The beat's Celery app; `ScheduleError` naming every schedule that cannot run against `catalog`."""
    entries = beat_entries(schedules, catalog)
    app = Celery("task_server_beat", set_as_current=False)
    app.conf.update(
        broker_url=settings.urls.broker_url,
        task_serializer="json",
        accept_content=["json"],
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        beat_schedule=entries,
        beat_scheduler=SCHEDULER,
        # The leader renews its lease on every tick: never sleep longer than a third of it.
        beat_max_loop_interval=settings.lease / 3,
    )
    app.conf[_LEASE_SETTING] = settings.lease
    app.conf[_LOCK_KEY_SETTING] = settings.lock_key
    app.conf[_LOCK_URL_SETTING] = settings.urls.result_backend
    return app


def beat_entries(schedules: Sequence[Schedule], catalog: ContractCatalog) -> dict[str, dict[str, Any]]:
    """Celery `beat_schedule` entries: validated wire arguments, the contract's queue and shape header."""
    problems = schedule_problems(schedules, catalog)
    timings: dict[str, timedelta | crontab] = {}
    for item in schedules:
        if isinstance(item, Schedule) and not any(p.startswith(f"schedule {item.name!r}:") for p in problems):
            try:
                timings[item.name] = _timing(item)
            except ValueError as error:  # a cron field Celery cannot read
                problems.append(f"schedule {item.name!r}: cron {item.cron}: {error}")
    if problems:
        raise ScheduleError(problems)
    entries = {}
    for item in schedules:
        args, kwargs = item.wire_arguments()
        entries[item.name] = {
            "task": item.contract.name,
            "schedule": timings[item.name],
            "args": args,
            "kwargs": kwargs,
            "options": {
                "queue": item.queue or item.contract.queue,
                "headers": {SHAPE_HEADER: dict(item.contract.shape)},
            },
        }
    return entries


def _timing(item: Schedule) -> timedelta | crontab:
    table = item.crontab()
    if table is None:
        return timedelta(seconds=item.interval)
    return crontab(**table.fields())


class LeaderScheduler(Scheduler):  # type: ignore[misc]
    """Celery's in-memory scheduler that fires only while it holds the beat lease in Redis."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        conf = app.conf
        self.lease = float(conf[_LEASE_SETTING])
        self.lock_key = str(conf[_LOCK_KEY_SETTING])
        self.last_run_key = f"{self.lock_key}:last-run"
        self._lock_url = str(conf[_LOCK_URL_SETTING])
        self._redis = redis.Redis.from_url(self._lock_url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._lock = self._redis.lock(self.lock_key, timeout=self.lease, blocking=False, thread_local=False)
        # Who holds the lease, readable in Redis by operators (and tests): host, pid and a nonce.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leading = False
        super().__init__(app, *args, **kwargs)

    @property
    def info(self) -> str:
        return (
            f"    . leader lease -> {self.lock_key} ({self.lease:g} s) on {redact_url(self._lock_url)}\n"
            f"    . state -> Redis hash {self.last_run_key} (no schedule file)"
        )

    def install_default_entries(self, data: Any) -> None:
        """None: Celery would add its daily `celery.backend_cleanup`, which no worker here serves."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lease():
            return self.lease / 3
        interval: float = super().tick(*args, **kwargs)
        return min(interval, self.lease / 3)

    def reserve(self, entry: ScheduleEntry) -> ScheduleEntry:
        new_entry: ScheduleEntry = super().reserve(entry)
        try:
            self._redis.hset(self.last_run_key, entry.name, new_entry.last_run_at.isoformat())
        except _REDIS_ERRORS as error:
            logger.warning("beat: could not record the run of %r in Redis: %s", entry.name, error)
        return new_entry

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.leading:
                self.leading = False
                try:
                    self._lock.release()
                    logger.info("beat: released the lease %s", self.lock_key)
                except (*_REDIS_ERRORS, redis.exceptions.LockError) as error:
                    logger.warning("beat: could not release the lease %s: %s", self.lock_key, error)
            self._redis.close()

    def _hold_lease(self) -> bool:
        """Renew the lease if held, else try to take it; never fire without it."""
        try:
            if self.leading:
                self._lock.reacquire()
                return True
            if self._lock.acquire(token=self.token):
                self.leading = True
                logger.info("beat: leading (lease %s, token %s)", self.lock_key, self.token)
                self._restore_last_runs()
                return True
            return False
        except redis.exceptions.LockError as error:
            logger.warning("beat: lost the lease %s (%s); standing by", self.lock_key, error)
        except _REDIS_ERRORS as error:
            logger.warning("beat: cannot reach Redis for the lease %s (%s); not firing", self.lock_key, error)
        self.leading = False
        return False

    def _restore_last_runs(self) -> None:
        """Continue from when the last leader fired each schedule, so a takeover neither repeats nor waits."""
        stored = self._redis.hgetall(self.last_run_key)
        for raw_name, raw_time in stored.items():
            entry = self.schedule.get(_text(raw_name))
            if entry is not None:
                entry.last_run_at = datetime.fromisoformat(_text(raw_time))
        self._heap = None  # rebuilt from the restored times on this tick


def load_schedules(spec: str) -> list[Schedule]:
    """The schedules named by `module:attribute`: a list or tuple of `Schedule`."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"expected MODULE:ATTR, got {spec!r}")
    value = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{spec} is a {type(value).__name__}, not a list of Schedule")
    return list(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
