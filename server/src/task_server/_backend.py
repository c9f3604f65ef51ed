"""The result backend: Celery's Redis backend, except that a result it cannot store is reported
as outcome unknown rather than as a failure of the task, and that each record is stored in one
round trip with its contract's lifetime."""

from __future__ import annotations

import hashlib
import json
import json.encoder
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import states
from celery.backends.redis import RedisBackend, SentinelBackend
from celery.exceptions import BackendStoreError
from kombu.exceptions import EncodeError
from kombu.utils import json as kombu_json

from task_contracts import redact_url, wire
from task_contracts.wire import (
    ATTEMPT_FIELD,
    CALL_DIGEST_FIELD,
    REMOTE_BROKER_UNAVAILABLE,
    REPLY_CHANNEL_PREFIX,
    RUNNING_KEY_PREFIX,
)

from ._batch_pop import pop_ahead
from ._errors import OutcomeUnknown
from ._inline import running_on_the_loop
from ._internals.backend import BackendHooks, max_value_size, plain_record_meta
from ._pipelined import pipeline_for
from ._signing import SIGNING_KEY_SETTING, RecordSigner
from ._unacked import RemovalAtStore, removal_at_store

#: Key of the per-task start counter kept by `_deliveries` (removed once the task has finished).
DELIVERIES_KEY_PREFIX = wire.DELIVERIES_KEY_PREFIX
#: `app.conf` key mapping each task name to the seconds its finished record is kept.
RESULT_TTLS_SETTING = "task_sdk_result_ttls"
#: Attribute of a call's request (Celery's task context): the digest of its arguments
#: (`task_contracts.wire.call_digest`), set before anything is stored for it (`_execution`).
CALL_DIGEST_ATTRIBUTE = "task_sdk_call_digest"

# Hot path: Celery stores a record as GET (never overwrite a SUCCESS) then SET + PUBLISH, two round
# trips, and keeps it `result_expires` (a day). This script does the same check, SET with the
# contract's lifetime and PUBLISH in one atomic round trip, and, once the task has finished,
# deletes its start counter and its running mark (measured: one Redis round trip and ~112 bytes
# per call fewer, and ~400 bytes fewer while the record is kept: a finished call's cancel is
# answered from its record). It also
# publishes on the caller's reply channel, if it named one (`REPLY_CHANNEL_PREFIX`): a client then
# needs no subscription of its own per call.
# A SUCCESS is kept unless it lacks the digest of this call's arguments (then someone else wrote it).
# A stored SUCCESS also removes the message's unacked entry when given (`_unacked.RemovalAtStore`).
# KEYS: record, start counter, running mark, [unacked index, unacked hash]. ARGV: record JSON,
# lifetime (ms), "1" if final, reply channel or "", the call's digest or "", [delivery tag].
_STORE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and record['status'] == 'SUCCESS' then
    if ARGV[5] == '' or record['call_digest'] == ARGV[5] then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[1]) end
if ARGV[3] == '1' then redis.call('DEL', KEYS[2], KEYS[3]) end
if KEYS[5] then
  redis.call('ZREM', KEYS[4], ARGV[6])
  redis.call('HDEL', KEYS[5], ARGV[6])
end
return 1
"""
_STORE_SHA = hashlib.sha1(_STORE_SCRIPT.encode()).hexdigest()


class BackendOutOfMemory(BackendStoreError):  # type: ignore[misc]
    """Redis refused a write with -OOM (`maxmemory` reached, `noeviction`): unavailable for writes,
    not a failure of the task. Not retried: a call on the worker's event loop would hold the loop
    for the ~10 s of retries, and a full Redis seldom frees memory by itself that soon."""


def out_of_memory(error: BaseException) -> bool:
    """-OOM, also from inside a script ("Error running script ... -OOM command not allowed ...")."""
    return isinstance(error, redis.exceptions.OutOfMemoryError) or (
        isinstance(error, redis.exceptions.ResponseError) and "-OOM" in str(error)
    )


# What storing raises once the retries below have given up on Redis.
STORE_ERRORS = (
    BackendStoreError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    socket.timeout,
    OSError,
)

logger = logging.getLogger(__name__)


def store_retry_config() -> dict[str, Any]:
    """Retry a failed store for about 10 s (jittered exponential backoff) before giving up.

    Without it Celery 5.7 gives up at once (it reads the stored record before writing it), so a
    Redis restart of a second loses every result being stored at that moment.
    """
    return {
        "result_backend_always_retry": True,
        "result_backend_max_retries": 15,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 2000,
    }


class _ReportsLostResults(BackendHooks):
    """Celery would record the Redis `ConnectionError` as the task's own exception; the task did
    run, so the client must learn that its outcome is unknown, not that it failed.

    Each record is stored in one round trip with its contract's lifetime (`_STORE_SCRIPT`).
    """

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app=app, url=url or app.conf.result_backend, **kwargs)  # type: ignore[call-arg]
        self._ttls: Mapping[str, float] = app.conf.get(RESULT_TTLS_SETTING) or {}
        key_file = app.conf.get(SIGNING_KEY_SETTING)
        self._signer = RecordSigner.from_file(key_file) if key_file else None
        # Read once, as the settings above: Celery looks it up for every record (50k instructions).
        self._extended = bool(app.conf.find_value_for_key("extended", "result"))
        # Celery encodes each record through kombu's serializer registry, whose JSON makes a new
        # encoder every time: the same encoder, made once, while results are kombu's JSON, uncompressed.
        backend: Any = self
        # (Celery 5.6 has no result compression, nor the attribute.)
        plain_json = backend.encoder is kombu_json.dumps and not getattr(backend, "compression", None)
        self._record_encoder = one_shot_json(kombu_json.JSONEncoder()) if plain_json else None
        self._timezone = app.timezone  # read once too (Celery's app reads it through a locked property)
        self._max_value_size = max_value_size(backend)

    def store_record(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        backend: Any = self  # a mixin of Celery's RedisBackend (untyped)
        meta = self.record_meta(result=result, state=state, traceback=traceback, request=request)
        task_id = task_id.decode() if isinstance(task_id, bytes) else task_id
        meta["task_id"] = task_id
        digest = getattr(request, CALL_DIGEST_ATTRIBUTE, None) if request is not None else None
        value = self.record_json(meta, request, digest)
        if isinstance(value, str) and len(value) > self._max_value_size:
            raise BackendStoreError("value too large for Redis backend", state=state, task_id=task_id)
        ttl = self._ttls.get(getattr(request, "task", None) or "", backend.expires or 86_400)
        final = "1" if state in states.READY_STATES else "0"
        keys = (backend.get_key_for_task(task_id), DELIVERIES_KEY_PREFIX + task_id, RUNNING_KEY_PREFIX + task_id)
        # No `ensure` (Celery's `set` retries ~20 s in it): a failure goes straight to the bounded
        # retries of `store_result` (`store_retry_config`), as Celery's first step (a GET) does.
        removal = removal_at_store(request, task_id) if state == states.SUCCESS else None
        try:
            self._store(keys, value, ttl, final, reply_channel(request), digest or "", removal)
        except redis.exceptions.ResponseError as error:
            if not out_of_memory(error):
                raise
            self._announce_unavailable(task_id, keys[0], error, request)
            raise BackendOutOfMemory(f"the result backend is out of memory: {error}", task_id=task_id) from None
        return result

    def record_json(self, meta: dict[str, Any], request: Any, digest: str | None = None) -> Any:
        """The record as stored: with the digest of the call's arguments (`digest`, else the request's),
        signed if the worker has a key."""
        if digest is None and request is not None:
            digest = getattr(request, CALL_DIGEST_ATTRIBUTE, None)
        if digest:
            meta[CALL_DIGEST_FIELD] = digest
        value = self.encode_record(meta)
        return value if self._signer is None else self._signer.sign_json(value)

    def encode_record(self, meta: dict[str, Any]) -> Any:
        """`encode` (Celery's), through the encoder made once when there is one."""
        encoder = self._record_encoder
        if encoder is None:
            backend: Any = self
            return backend.encode(meta)
        try:
            return encoder(meta)
        except Exception as error:  # as kombu's registry reports it (Celery's tracer expects it)
            raise EncodeError(error) from error

    def publish_refusal(self, task_id: str, error: Exception, request: Any) -> None:
        """Publish a FAILURE record for `error` on the message's reply channel only: it must not
        replace the record stored under its id, which belongs to another call (`_admission`)."""
        channel = reply_channel(request)
        if not channel:
            return
        backend: Any = self
        meta = self.record_meta(
            result=backend.prepare_exception(error), state=states.FAILURE, traceback=None, request=request
        )
        meta["task_id"] = task_id
        backend.client.publish(channel, self.record_json(meta, request))

    def _store(
        self,
        keys: tuple[bytes, str, str],
        value: Any,
        ttl: float,
        final: str,
        reply: str,
        digest: str,
        removal: RemovalAtStore | None,
    ) -> None:
        # On the backend's pipelined connection (`_pipelined`), not through redis-py's client: its pool
        # checkout, health check and retry wrapper cost more than the command itself (worker CPU per
        # `client.add(4, 7)`, see the commit). Connection errors reach Celery's bounded retries as before.
        backend: Any = self
        pipeline = pipeline_for(backend.client.connection_pool)
        unacked, tag = (removal.keys, (removal.delivery_tag,)) if removal is not None else ((), ())
        all_keys = (*keys, *unacked)
        arguments = (len(all_keys), *all_keys, value, max(1, int(ttl * 1000)), final, reply, digest, *tag)
        try:
            written = pipeline.send("EVALSHA", _STORE_SHA, *arguments)
            if final == "1" and running_on_the_loop():  # not a progress report: the call goes on
                pop_ahead()  # while Redis is awake with the record (`_batch_pop.pop_ahead`)
            stored = written()
        except redis.exceptions.NoScriptError:  # a Redis restarted (or flushed) since: send the script itself
            stored = pipeline.send("EVAL", _STORE_SCRIPT, *arguments)()
        if removal is not None and stored == 1:
            removal.done()

    def _announce_unavailable(self, task_id: str, record_key: bytes, error: BaseException, request: Any) -> None:
        """Tell a waiting caller at once that its record cannot be stored (PUBLISH needs no memory).

        Published only, never stored: a caller that waits later finds no record (`TaskTimeout`).
        """
        backend: Any = self
        meta = {
            "task_id": task_id,
            "status": states.FAILURE,
            "result": {
                "exc_type": REMOTE_BROKER_UNAVAILABLE,
                "exc_module": "task_server",
                "exc_message": [
                    f"it is out of memory (maxmemory reached) and refused to store the outcome of {task_id} "
                    f"({error}); the call was taken by a worker and may have run: it is not run again"
                ],
                "url": redact_url(backend.url or ""),
            },
            "traceback": None,
            "children": [],
            "date_done": None,
        }
        notice = self.record_json(meta, request)
        try:
            backend.client.publish(record_key, notice)
            if reply_channel(request):
                backend.client.publish(reply_channel(request), notice)
        except (redis.exceptions.RedisError, OSError) as publish_error:
            logger.error("task %s: could not announce that its record cannot be stored: %s", task_id, publish_error)

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> Any:
        try:
            return super().mark_as_done(task_id, result, request, store_result, state)  # type: ignore[misc]
        except STORE_ERRORS as error:
            logger.error("task %s finished but its result could not be stored (%s): outcome unknown", task_id, error)
            raise OutcomeUnknown(
                f"task {task_id} finished on the worker but its result could not be stored "
                f"({type(error).__name__}: {error}); it may or may not have taken effect"
            ) from None

    def mark_as_revoked(
        self,
        task_id: str,
        reason: str = "",
        request: Any = None,
        store_result: bool = True,
        state: str = states.REVOKED,
    ) -> None:
        # Without a request it comes from a remote-control `revoke` of a call this worker does not
        # hold: anyone may broadcast one, and callers would take the REVOKED record it stores as their
        # call's outcome. Stored instead by the worker that gets the message, if it is dropped then
        # (`_revoke_guard` lets a call that names a cancel hash run unless the revoke is genuine).
        if request is None and state == states.REVOKED:
            logger.info("task %s: a remote revoke of a call not held here; its record is left alone", task_id)
            return
        super().mark_as_revoked(task_id, reason, request, store_result, state)  # type: ignore[misc]

    def record_meta(
        self, result: Any, state: str, traceback: Any, request: Any, format_date: bool = True, encode: bool = False
    ) -> dict[str, Any]:
        if format_date and not self._extended:
            meta = plain_record_meta(self, result, state, traceback, request, self._timezone)
        else:
            meta = super().record_meta(result, state, traceback, request, format_date, encode)
        # Which attempt stored this record, once a call has been retried (`handle.attempt` on the client).
        retries = int(getattr(request, "retries", 0) or 0) if request is not None else 0
        if retries or state == states.RETRY:
            meta[ATTEMPT_FIELD] = retries + 1
        return meta


class ResultBackend(_ReportsLostResults, RedisBackend):  # type: ignore[misc]
    """Used as `app.backend_cls` for `redis://` and `rediss://`; the URL still comes from `result_backend`."""


class SentinelResultBackend(_ReportsLostResults, SentinelBackend):  # type: ignore[misc]
    """The same for `sentinel://`: the master is found through the sentinels, again after a failover."""


def one_shot_json(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """`encoder.encode`: the same text, or the same error raised, through the C encoder it builds
    itself, without its two Python steps on the way (and the float formatter they make each time,
    which the C encoder never uses). A record is encoded on the path of every call (see the commit)."""
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
    if make is None or encoder.indent is not None:  # a Python without the C accelerator, or indented
        return encoder.encode
    strings = json.encoder.encode_basestring_ascii if encoder.ensure_ascii else json.encoder.encode_basestring
    circular = encoder.check_circular
    default, separators = encoder.default, (encoder.key_separator, encoder.item_separator)
    sort_keys, skipkeys, allow_nan = encoder.sort_keys, encoder.skipkeys, encoder.allow_nan

    def encode(value: Any) -> str:
        markers = {} if circular else None
        return "".join(make(markers, default, strings, None, *separators, sort_keys, skipkeys, allow_nan)(value, 0))

    return encode


def reply_channel(request: Any) -> str:
    """The caller's reply channel named in the message's `reply_to`, or "" (none, or not one of ours)."""
    reply_to = getattr(request, "reply_to", None)
    return reply_to if isinstance(reply_to, str) and reply_to.startswith(REPLY_CHANNEL_PREFIX) else ""


def backend_class(url: str) -> type[RedisBackend]:
    return SentinelResultBackend if url.startswith("sentinel:") else ResultBackend


def backend_path(url: str) -> str:
    """`backend_class` as `module:Class`, the form every supported Celery takes as `app.backend_cls`
    (Celery 5.6.0's `by_url` fails on a class: `argument of type 'type' is not iterable`)."""
    chosen = backend_class(url)
    return f"{chosen.__module__}:{chosen.__qualname__}"
