"""Before a call runs: was it cancelled, did it finish before, is its contract at its fleet-wide
limit, was it started before?

All are answered by one atomic script in the result backend's Redis, so a call costs one round
trip here whatever its contract declares, and a caller's cancel (see `task_contracts.wire`)
either comes before the start (the call never runs) or after it (the caller is told it runs).

- Cancelled: the caller set the durable revoke key; a REVOKED record is stored again (Celery may
  have overwritten the caller's with RETRY) and the message is dropped (`Ignore`). Because the mark
  lives in Redis, not in a worker's memory, it survives worker restarts and holds for every worker.
- At the limit (`concurrency=N`): the message is published again with a short countdown, keeping
  its id, attempt and expiry, and dropped here, so it waits in the broker and not in a worker slot.
  A slot is a lease in a sorted set that ends at the contract's bound plus a margin: a worker killed
  mid-call cannot hold a slot for longer.
- Finished before (its worker was lost between storing the record and acknowledging the message):
  the message is dropped without running it again or touching the record.
- Started before: the start is counted for the redelivery policy (`_deliveries.judge`).

Each delivery's admission carries a token of its own (`_tokens.unique_token`), written in the running mark
with the start: the same admission asked again (a lost connection: the script may have run, its reply
lost) finds its own mark and gets its start back, counted once. A new delivery has a new token.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import redis.exceptions
from celery import Task
from celery.exceptions import Ignore

from task_contracts import Contract
from task_contracts.wire import (
    CANCEL_HASH_HEADER,
    CONCURRENCY_KEY_PREFIX,
    RESULT_KEY_PREFIX,
    REVOKED_CANCELLED,
    REVOKED_KEY_PREFIX,
    RUNNING_KEY_PREFIX,
    cancel_hash,
)

from . import _bookkeeping as bookkeeping
from ._backend import CALL_DIGEST_ATTRIBUTE, DELIVERIES_KEY_PREFIX, STORE_ERRORS, out_of_memory
from ._deliveries import COUNT_TTL_SECONDS, judge
from ._errors import DuplicateTaskId
from ._pipelined import pipeline_for
from ._preadmission import claim_admission, digest_asked_with, remember_asked
from ._tokens import unique_token
from ._unacked import plan_removal_at_store

logger = logging.getLogger(__name__)

#: Seconds a lease outlives the contract's bound: the hard time limit ends the call before then.
LEASE_MARGIN = 5.0
#: Countdown range (seconds) of a call sent back to the broker because its contract is at its limit.
REQUEUE_DELAY = (0.05, 0.25)

# KEYS: revoked, deliveries, running, leases (untouched without a limit), record.
# ARGV: count ttl, running value (naming the delivery's token), running ttl, task id, limit (0: none),
# lease seconds, the call's digest ("" if none), "1" to pass over the revoke mark (it was found forged).
# Returns {"revoked", mark} | {"conflict", their digest} | {"finished", status} | {"full", 0} | {"start", starts}.
# A running mark equal to the one it would write is this delivery's own start (asked again after a lost
# reply): that start's verdict, counted once, even if a cancel came since (it was told the call runs).
_ADMIT = """
local digest = ARGV[7]
local running = redis.call('get', KEYS[3])
if running == ARGV[2] then return {'start', tonumber(redis.call('get', KEYS[2])) or 1} end
local reason = redis.call('get', KEYS[1])
if reason and ARGV[8] ~= '1' then return {'revoked', reason} end
local stored = redis.call('get', KEYS[5])
if stored then
  local ok, record = pcall(cjson.decode, stored)
  if ok and type(record) == 'table' then
    local theirs = record['call_digest']
    if digest ~= '' and type(theirs) == 'string' and theirs ~= digest then return {'conflict', theirs} end
    -- A call with a digest is finished only by a record of its own: one without (written by
    -- someone else) does not stop it.
    local status = record['status']
    if (digest == '' or theirs == digest) and (status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED') then
      return {'finished', status}
    end
  end
end
if digest ~= '' then
  if running then
    local ok, mark = pcall(cjson.decode, running)
    if ok and type(mark) == 'table' and type(mark['digest']) == 'string' and mark['digest'] ~= digest then
      return {'conflict', mark['digest']}
    end
  end
end
local limit = tonumber(ARGV[5])
if limit > 0 then
  local t = redis.call('time')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  redis.call('zremrangebyscore', KEYS[4], '-inf', now)
  if not redis.call('zscore', KEYS[4], ARGV[4]) and redis.call('zcard', KEYS[4]) >= limit then
    return {'full', 0}
  end
  redis.call('zadd', KEYS[4], now + tonumber(ARGV[6]), ARGV[4])
  redis.call('expire', KEYS[4], math.ceil(tonumber(ARGV[6])) + 60)
end
local starts = redis.call('incr', KEYS[2])
redis.call('expire', KEYS[2], ARGV[1])
redis.call('set', KEYS[3], ARGV[2], 'EX', ARGV[3])
return {'start', starts}
"""


_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()  # Redis names a script by its SHA-1


@functools.lru_cache(maxsize=8)
def _admit_script(client: Any) -> Any:
    # Sent once per connection pool, then called by its SHA (redis-py reloads it if Redis forgot it).
    return client.register_script(_ADMIT)


def _admit_now(client: Any, keys: list[str], arguments: list[Any]) -> Any:
    """The admission script's reply, asked by its SHA on the worker's pipelined connection
    (`_pipelined`), as an early admission is: a call that waited for a thread asks from it (under
    32 RabbitMQ callers, most calls), and redis-py's client costs more CPU than the command (its
    pool checkout, health check and retry wrapper). A forgotten script (NOSCRIPT: nothing ran) or
    a lost connection goes through redis-py's Script as before, which loads the script and retries
    the connection as the backend's client is configured to: with the same arguments, so the same
    delivery token, a script that ran already (its reply lost) gives its verdict again, counted once."""
    try:
        return pipeline_for(client.connection_pool).send("EVALSHA", _ADMIT_SHA, len(keys), *keys, *arguments)()
    except (redis.exceptions.NoScriptError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return _admit_script(client)(keys=keys, args=arguments)


def deliveries_key(task_id: str, retries: int) -> str:
    # Each attempt of a retried call is a start of its own, counted apart from the others.
    return DELIVERIES_KEY_PREFIX + task_id + (f":{retries}" if retries else "")


def leases_key(contract: Contract[..., Any]) -> str:
    """The sorted set of the running calls' slots under the contract's fleet-wide concurrency limit."""
    return CONCURRENCY_KEY_PREFIX + contract.name


def admission_command(
    contract: Contract[..., Any],
    task_id: str,
    retries: int,
    lease: float,
    digest: str | None = None,
    pass_revoke_mark: bool = False,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of the admission script for one start of a call; `digest`: of its
    arguments (`task_contracts.wire.call_digest`)."""
    running = running_mark(contract.interruptible, retries + 1, digest, unique_token())
    keys = [
        REVOKED_KEY_PREFIX + task_id,
        deliveries_key(task_id, retries),
        RUNNING_KEY_PREFIX + task_id,
        # Named even without a limit (the script then leaves it alone): a Redis ACL user is refused a
        # script whose keys include one outside its patterns, such as "".
        leases_key(contract),
        RESULT_KEY_PREFIX + task_id,
    ]
    limit = contract.concurrency or 0
    lease_end = lease + LEASE_MARGIN
    passed = "1" if pass_revoke_mark else "0"
    return keys, [COUNT_TTL_SECONDS, running, int(lease_end), task_id, limit, lease_end, digest or "", passed]


def running_mark(interruptible: bool, attempt: int, digest: str | None, delivery: str) -> str:
    """The running mark of a started call: `json.dumps` of `{"interruptible", "attempt", "digest",
    "delivery"}` (no digest when it has none; `delivery`: the delivery's token), written without the
    encoder for a bool, an int and a digest and token of letters and digits (half of
    `admission_command`'s time, measured)."""
    if (
        type(interruptible) is not bool
        or type(attempt) is not int
        or (digest and not _plain(digest))
        or not _plain(delivery)
    ):
        mark: dict[str, Any] = {"interruptible": interruptible, "attempt": attempt}
        if digest:
            mark["digest"] = digest
        mark["delivery"] = delivery
        return json.dumps(mark)
    start = '{"interruptible": true, "attempt": ' if interruptible else '{"interruptible": false, "attempt": '
    if digest:
        return f'{start}{attempt}, "digest": "{digest}", "delivery": "{delivery}"}}'
    return f'{start}{attempt}, "delivery": "{delivery}"}}'


def _plain(text: str) -> bool:
    # JSON writes ASCII letters and digits as they are, between quotes.
    return text.isascii() and text.isalnum()


#: Attribute of a Celery task serving single calls of a contract: the contract.
CONTRACT_ATTRIBUTE = "task_sdk_contract"


def ask_early(request: Any) -> None:
    """Write the admission of a call that a free thread is about to start, without waiting for the
    verdict (`_preadmission`); `admitted` then reads it. Nothing is asked for other tasks."""
    task = request.task
    contract = getattr(task, CONTRACT_ATTRIBUTE, None)
    if contract is None:
        return
    retries = int(request.request_dict.get("retries") or 0)
    digest = digest_asked_with(request)  # kept for the call's body, which would compute the same again
    keys, arguments = admission_command(contract, request.id, retries, contract.timeout, digest)
    # By its SHA, not its 1.7 kB text (which Redis hashes on every EVAL: ~3 µs of its CPU a call,
    # measured): the verdict is read before the body runs (`admitted`), which asks again, the script
    # sent with it, if Redis has forgotten it; a NOSCRIPT refusal ran nothing.
    command = ("EVALSHA", _ADMIT_SHA, len(keys), *keys, *arguments)
    pool = task.backend.client.connection_pool
    ledger = unacked_ledger(request)
    if ledger is not None and ledger.shares_server(pool):
        # Broker and backend are one Redis: in one write with the message's unacked entry (`_unacked`),
        # which is therefore in Redis once the verdict is read: the store of the call's record removes it.
        reply = ledger.send_with_held(*command)
        plan_removal_at_store(request, ledger)
    else:
        reply = pipeline_for(pool).send(*command)
    reply.again = (keys, arguments)  # the same delivery token, should the reply be lost (`admitted`)
    remember_asked(request, reply)


def unacked_ledger(request: Any) -> Any:
    """The unacked-record writer of the channel that delivered `request`'s message, if it has one."""
    ledger_of = getattr(getattr(request.message, "channel", None), "unacked_ledger", None)
    return ledger_of() if ledger_of is not None else None


def release_early_admission(task: Task, contract: Contract[..., Any]) -> None:
    """A call refused before its admission (its arguments): give back the slot of the concurrency
    limit that its early admission took (else held until the lease ends)."""
    request = task.request
    asked = claim_admission(request)
    if asked is None or not contract.concurrency:
        return
    with contextlib.suppress(*STORE_ERRORS, redis.exceptions.ResponseError):
        verdict, _ = asked()
        if _text(verdict) == "start":
            task.backend.client.zrem(leases_key(contract), request.id)


@contextlib.contextmanager
def admitted(task: Task, contract: Contract[..., Any], max_deliveries: int, lease: float) -> Iterator[None]:
    """Run the body only if this call may start now (see the module docstring); free its slot after.

    `lease` is the longest the call may run (its time limit), in seconds. The verdict may have been
    asked for already, as the call was handed to a thread (`_preadmission`).
    """
    request = task.request
    task_id: str = request.id
    retries = int(request.retries or 0)
    limit = contract.concurrency or 0
    leases = leases_key(contract)
    client = task.backend.client
    digest = getattr(request, CALL_DIGEST_ATTRIBUTE, None)
    try:
        asked = claim_admission(request)
        try:
            if asked is not None:
                try:
                    verdict, value = asked()
                except redis.exceptions.NoScriptError:
                    # Asked for by the script's SHA, which Redis has forgotten (a restart, SCRIPT
                    # FLUSH): nothing ran, so it is asked again, the script sent with it.
                    asked = None
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    if asked.again is None:
                        raise
                    # Lost with its connection, maybe after Redis ran it: asked again with the same
                    # delivery token, so a start it counted is given back, not counted twice.
                    keys, arguments = asked.again
                    verdict, value = _admit_script(client)(keys=keys, args=arguments)
            if asked is None:
                keys, arguments = admission_command(contract, task_id, retries, lease, digest)
                verdict, value = _admit_now(client, keys, arguments)
        except redis.exceptions.ResponseError as refused:
            if out_of_memory(refused):
                raise
            # Garbage under this call's own bookkeeping keys (a start counter that is no integer, a
            # key of the wrong type): remove them, report it, and ask once more.
            client.delete(DELIVERIES_KEY_PREFIX + task_id, RUNNING_KEY_PREFIX + task_id)
            bookkeeping.report(f"the start counter or running mark of {task_id}", str(refused))
            keys, arguments = admission_command(contract, task_id, retries, lease, digest)
            verdict, value = _admit_script(client)(keys=keys, args=arguments)
        verdict = _text(verdict)
        if verdict == "revoked" and not _revoke_is_genuine(contract, task_id, request, _text(value)):
            # Someone without the caller's cancel token wrote the mark: decide again without it.
            keys, arguments = admission_command(contract, task_id, retries, lease, digest, pass_revoke_mark=True)
            verdict, value = _admit_script(client)(keys=keys, args=arguments)
            verdict = _text(verdict)
    except (*STORE_ERRORS, redis.exceptions.ResponseError) as error:
        if isinstance(error, redis.exceptions.ResponseError) and not out_of_memory(error):
            raise
        # Unrecorded (Redis down, or refusing writes at maxmemory): no cancel or limit can be
        # checked; the redelivery policy decides alone.
        verdict, value, unrecorded = "start", None, error
    else:
        unrecorded = None
    if verdict == "conflict":
        logger.warning(
            "%s[%s]: refused: another call with other arguments already used this id (digest %s, this one %s); "
            "its record is left alone",
            contract.name,
            task_id,
            _text(value)[:12],
            (digest or "")[:12],
        )
        with contextlib.suppress(*STORE_ERRORS):
            task.backend.publish_refusal(
                task_id,
                DuplicateTaskId(f"{contract.name} {task_id}: another call with other arguments already used this id"),
                request,
            )
        raise Ignore()
    if verdict == "finished":
        logger.warning("%s[%s]: delivered again after it had finished; not run again", contract.name, task_id)
        raise Ignore()
    if verdict == "revoked":
        reason = revoke_reason(_text(value))
        logger.info("%s[%s]: %s before it started; not run", contract.name, task_id, reason)
        task.backend.mark_as_revoked(task_id, reason, request=request)
        raise Ignore()
    if verdict == "full":
        task.signature_from_request(request, countdown=random.uniform(*REQUEUE_DELAY), retries=retries).apply_async()
        raise Ignore()
    try:
        judge(task, contract, task_id, None if value is None else int(value), max_deliveries, unrecorded)
        yield
    finally:
        if limit and unrecorded is None:
            with contextlib.suppress(*STORE_ERRORS):  # the lease runs out by itself
                client.zrem(leases, task_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value if value is not None else "")


def revoke_reason(mark: str) -> str:
    """The reason a revoke mark gives: `{"reason", "token"}` JSON, or the bare reason (older clients)."""
    parsed = _parsed_mark(mark)
    reason = parsed.get("reason") if parsed is not None else mark
    return reason if isinstance(reason, str) and reason else REVOKED_CANCELLED


def _parsed_mark(mark: str) -> dict[str, Any] | None:
    if not mark.startswith("{"):
        return None
    try:
        parsed = json.loads(mark)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def mark_is_genuine(mark: str, expected: str) -> bool:
    """Whether a revoke mark carries the token whose hash is `expected` (a call's `cancel_hash`)."""
    parsed = _parsed_mark(mark)
    token = parsed.get("token") if parsed is not None else None
    return isinstance(token, str) and hmac.compare_digest(cancel_hash(token), expected)


def _revoke_is_genuine(contract: Contract[..., Any], task_id: str, request: Any, mark: str) -> bool:
    """A call that names a cancel hash is cancelled only by a mark carrying its token; a call
    without one (foreign producers, older clients) by any mark."""
    expected = (request.headers or {}).get(CANCEL_HASH_HEADER) or getattr(request, CANCEL_HASH_HEADER, None)
    if not isinstance(expected, str) or not expected or mark_is_genuine(mark, expected):
        return True
    logger.warning(
        "%s[%s]: ignored a revoke mark without the caller's cancel token (written by someone else)",
        contract.name,
        task_id,
    )
    return False


def forget_start(task: Task) -> None:
    """Before a retry: the call is no longer running, so a cancel until its next start stops it."""
    with contextlib.suppress(*STORE_ERRORS):
        task.backend.client.delete(RUNNING_KEY_PREFIX + task.request.id)
