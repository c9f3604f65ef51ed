"""Calls due far in the future wait in Redis, not in a worker's memory.

Celery holds every message with an `eta` in the worker's timer until it is due: 20,000 calls with
an eta in year 9999 took a worker from 61 to 268 MB, and each came back again from the unacked
record after the visibility timeout, to be held a second time. Here a message due more than the
horizon from now (`--eta-horizon`; by default half the visibility timeout, so a held message is
never delivered twice) is moved to the sorted set `task-sdk-deferred` (score: its due time; member:
its queue and its envelope as received) and acknowledged. Every worker moves, about once a second,
the entries that have come within its horizon back to their queue, each in one script (ZREM, then
LPUSH only if the ZREM removed it), so that two workers never both requeue one. The call then
arrives again with its eta intact and is held as usual, for at most the horizon.

Redis brokers only: RabbitMQ's prefetch bounds what a worker holds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from task_contracts import wire

from ._internals.channel import raw_payload

#: `app.conf` key: seconds ahead a worker holds a scheduled call in memory (None: defer nothing).
ETA_HORIZON_SETTING = "task_sdk_eta_horizon"
DEFERRED_KEY = wire.DEFERRED_KEY
RELEASE_INTERVAL = 1.0
RELEASE_BATCH = 500

logger = logging.getLogger(__name__)

# KEYS: the deferred set. ARGV: latest due time to release, most entries.
_RELEASE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, member in ipairs(due) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local ok, entry = pcall(cjson.decode, member)
    if ok and type(entry) == 'table' and type(entry[1]) == 'string' and type(entry[2]) == 'string' then
      redis.call('LPUSH', entry[1], entry[2])
      moved = moved + 1
    end
  end
end
return moved
"""


def due_time(headers: Any) -> dt.datetime | None:
    """The aware due time a message's headers carry, or None (none, or unreadable: Celery decides)."""
    eta = headers.get("eta") if isinstance(headers, dict) else None
    if not isinstance(eta, str):
        return None
    try:
        due = dt.datetime.fromisoformat(eta)
    except ValueError:
        return None
    return due if due.tzinfo is not None else due.replace(tzinfo=dt.UTC)


def scheduling_fields(headers: Any, payload: Any) -> Any:
    """Where a message's eta is: its headers (protocol v2), or for a protocol-v1 message its body,
    as Celery converts it (`proto1_to_proto2`). A v1 eta in local time (`"utc": false`) is left to
    Celery: read as UTC here, it could come back hours after it was due."""
    if not isinstance(payload, dict):
        return headers
    if payload.get("utc", True) is not True:
        return None
    return {**payload, **(headers if isinstance(headers, dict) else {})}


def beyond(headers: Any, horizon: float) -> dt.datetime | None:
    """The due time of a message due more than `horizon` seconds from now, else None."""
    due = due_time(headers)
    if due is None or (due - dt.datetime.now(dt.UTC)).total_seconds() <= horizon:
        return None
    return due


def defer(client: Any, message: Any, due: dt.datetime) -> bool:
    """Move `message` to the deferred set (due at `due`); True if moved (the caller then acknowledges it)."""
    queue = (message.delivery_info or {}).get("routing_key")
    if not isinstance(queue, str) or not queue:
        return False
    member = json.dumps([queue, json.dumps(raw_payload(message))])
    client.zadd(DEFERRED_KEY, {member: due.timestamp()})
    return True


def release(client: Any, horizon: float) -> int:
    """Requeue the deferred calls now due within `horizon`; how many were moved."""
    latest = dt.datetime.now(dt.UTC).timestamp() + horizon
    moved = int(client.eval(_RELEASE, 1, DEFERRED_KEY, latest, RELEASE_BATCH))
    if moved:
        logger.info("requeued %d deferred call(s) now due within %g s", moved, horizon)
    return moved


class Deferrer:
    """One worker's deferral: `defer` on its consumer's messages, `release` on its consumer's timer."""

    def __init__(self, app: Any, consumer: Any, horizon: float) -> None:
        self.consumer = consumer
        self.horizon = horizon
        self._timer_of: Any = None

    def client(self) -> Any:
        return self.consumer.connection.default_channel.create_client()

    def maybe_defer(self, message: Any, payload: Any = None) -> bool:
        """Defer `message` if it is due beyond the horizon; `payload`, the body Celery decoded for a
        protocol-v1 message (its eta is there, not in headers), else None."""
        due = beyond(scheduling_fields(message.headers, payload), self.horizon)
        return due is not None and defer(self.client(), message, due)

    def start_releasing(self) -> None:
        connection = self.consumer.connection
        if self._timer_of is connection:  # Celery clears the timer on a reconnect: one entry per connection
            return
        self._timer_of = connection
        self.consumer.timer.call_repeatedly(RELEASE_INTERVAL, self._release_safely)

    def _release_safely(self) -> None:
        try:
            release(self.client(), self.horizon)
        except Exception as error:  # a broker fault: the next tick tries again
            logger.warning("could not requeue deferred calls: %r", error)


def deferrer_for(app: Any, consumer: Any) -> Deferrer | None:
    """The app's deferrer for `consumer` (one for all tasks), or None when deferral is off."""
    horizon = app.conf.get(ETA_HORIZON_SETTING)
    if horizon is None:
        return None
    deferrer: Deferrer | None = app.__dict__.get("_task_sdk_deferrer")
    if deferrer is None or deferrer.consumer is not consumer:
        deferrer = app.__dict__["_task_sdk_deferrer"] = Deferrer(app, consumer, float(horizon))
    deferrer.start_releasing()  # also entries deferred by other workers, gone since
    return deferrer
