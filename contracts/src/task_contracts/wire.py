"""The wire protocol beyond Celery's own: what producers in any language and the worker agree on.

Public and stable: header names, the reserved chunk task names, the remote error type names that
the worker stores in result records, and the layout of progress reports. Changing a value here
breaks deployed clients and foreign producers.
"""

from __future__ import annotations

import hashlib as _hashlib
import importlib as _importlib
import json as _json
from collections.abc import Callable, Mapping, Sequence
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii as _encode_ascii
from typing import Any, Final

#: Message header carrying the shape of the contract the caller was built with; absent from
#: foreign producers, whose calls are validated against the worker's contract alone. Its value is
#: `{"version": <major version>, "parameters": [[name, type text, digest], ...]}`, parameters in
#: declaration order, e.g. `{"version": 1, "parameters": [["x", "int", "f0765dbf"], ["y", "int",
#: "f0765dbf"]]}`. The digest is the first 8 hex digits of the SHA-256 of the parameter type's
#: JSON Schema (keys sorted, no spaces). The worker binds positional arguments to these names,
#: fills in its own defaults for parameters the call leaves out, and refuses with
#: `ContractMismatch` only what breaks the call: a parameter it does not know that the call uses,
#: a parameter it requires that the shape lacks, a value its changed type refuses, another major
#: version. The result is checked by the caller against its own result type.
SHAPE_HEADER: Final = "contract_shape"

#: Major versions: version 1 of a contract is served under its declared name (`math.add`), later
#: ones under `<name>.v<version>` (`math.add.v2`), side by side. Chunk names append `:chunk`.
VERSION_NAME_SEPARATOR: Final = ".v"

#: Remote exception type names the worker stores and clients recognise (`exc_type` in the result).
REMOTE_INVALID_ARGUMENTS: Final = "InvalidArguments"
REMOTE_CONTRACT_MISMATCH: Final = "ContractMismatch"
REMOTE_INVALID_RESULT: Final = "InvalidResult"
REMOTE_NOT_REGISTERED: Final = "NotRegistered"
REMOTE_OUTCOME_UNKNOWN: Final = "OutcomeUnknown"
#: Published (never stored) when the result backend refuses a record (-OOM): the client raises BrokerUnavailable.
REMOTE_BROKER_UNAVAILABLE: Final = "BrokerUnavailable"
REMOTE_DELIVERY_LIMIT: Final = "DeliveryLimitExceeded"
REMOTE_REFUSED_MESSAGE: Final = "RefusedMessage"
#: Celery's error when a pool process died mid-task and the message was not requeued.
REMOTE_WORKER_LOST: Final = "WorkerLostError"

#: RabbitMQ: every task queue is a durable quorum queue (`x-queue-type` argument), declared alike by
#: worker, client and any other producer (RabbitMQ refuses a second declaration with other arguments).
AMQP_QUEUE_TYPE: Final = "quorum"

#: Result-backend key and channel prefix used by Celery's Redis backend.
RESULT_KEY_PREFIX: Final = "celery-task-meta-"

#: Reply channels: a message whose `reply_to` property starts with this prefix (e.g.
#: `task-client-3f2a...`) has every record the worker stores for it published on that channel too,
#: besides `celery-task-meta-<id>`, so a caller needs one subscription for all its calls rather than
#: one per call. Records there are the same JSON, `task_id` included. Other `reply_to` values (Celery
#: sets a random one) are ignored. Workers before 0.3 publish on the task's channel only.
REPLY_CHANNEL_PREFIX: Final = "task-client-"

#: Celery state a task stores while it reports progress; its `result` holds the report.
PROGRESS_STATE: Final = "PROGRESS"
#: Keys of a progress report (`result` of a PROGRESS record).
PROGRESS_DONE: Final = "done"
PROGRESS_TOTAL: Final = "total"
PROGRESS_MESSAGE: Final = "message"

#: Remote-control command a worker answers with the contracts it serves.
CONTROL_CONTRACTS: Final = "task_contracts"
#: Remote-control command a client broadcasts after cancelling calls still queued (an abandoned
#: `imap`): `{"calls": {task id: cancel token}}`. A worker that receives one of those messages later
#: drops it on arrival, without an admission, when the token's hash is the message's `cancel_hash`.
CONTROL_CANCELLED: Final = "task_sdk_cancelled"

#: Chunks: one message carrying many calls of one contract (`RemoteTask.map`). The worker serves
#: them under a reserved wire name that no contract can take, since contract names never hold ":".
#: The message's only argument is a list of `[args, kwargs]` pairs; the result is a list with one
#: record per call, in order, shaped like a Celery result record:
#: `{"status": "SUCCESS", "result": value}` or
#: `{"status": "FAILURE", "result": {"exc_type", "exc_message", "exc_module"}, "traceback": text}`.
CHUNK_NAME_SUFFIX: Final = ":chunk"

#: The most calls one chunk message may carry; a worker refuses a larger chunk as a whole.
MAX_CHUNK_SIZE: Final = 1000


def chunk_task_name(contract_name: str) -> str:
    """The reserved wire name of a contract's chunk task, e.g. `math.add:chunk`."""
    return contract_name + CHUNK_NAME_SUFFIX


#: Cancellation, durable across worker restarts. A caller cancels a call that has not started by
#: setting `<REVOKED_KEY_PREFIX><id>` in the result backend (with a TTL) and storing a REVOKED
#: record; every worker checks that key before it starts a call. A worker that starts a call sets
#: `<RUNNING_KEY_PREFIX><id>` to `{"interruptible": bool, "attempt": n, ...}` in the same atomic step,
#: so a caller learns whether it came too late (and whether the call may be terminated).
REVOKED_KEY_PREFIX: Final = "task-sdk-revoked-"
RUNNING_KEY_PREFIX: Final = "task-sdk-running-"
#: Broker (Redis) keys a cancel by id searches besides the queues and kombu's `unacked` hash. A
#: worker's BRPOP takes a message off its queue before the worker writes its unacked entry: right
#: after each pop, Redis adds to the sorted set `TAKING_KEY` a member naming that BRPOP (score: Redis
#: time), and the worker removes it in the script that writes the entry (or once it knows it popped
#: nothing). A canceller that found the id nowhere waits until the members it saw are gone, then
#: looks in the unacked hash again. `DEFERRED_KEY`: the sorted set of calls due far ahead, each
#: member `[queue, envelope]` (a worker's `--eta-horizon`).
TAKING_KEY: Final = "task-sdk-taking"
DEFERRED_KEY: Final = "task-sdk-deferred"
#: `<DELIVERIES_KEY_PREFIX><id>`: how many times a call has started (kept until its final record is stored).
DELIVERIES_KEY_PREFIX: Final = "task-sdk-deliveries-"
#: Celery's exception type in a REVOKED record, and the reasons it carries as its message.
REMOTE_REVOKED: Final = "TaskRevokedError"
REVOKED_EXPIRED: Final = "expired"
REVOKED_CANCELLED: Final = "cancelled"
REVOKED_TERMINATED: Final = "terminated"

#: The Redis Lua script a caller runs (`EVAL`) to cancel a call, so that the check and the mark are
#: one atomic step against the worker's start. KEYS: `<RESULT_KEY_PREFIX><id>`,
#: `<RUNNING_KEY_PREFIX><id>`, `<REVOKED_KEY_PREFIX><id>`. ARGV: the revoke mark, its TTL in seconds,
#: the REVOKED record (JSON) to store and publish, `"1"` if the caller looked for the call's message
#: and found none (else `"0"`), and the digest of the call's arguments (`CALL_DIGEST_FIELD`) or `""`:
#: with a digest, only a record carrying it counts as this call's. Replies `{"finished", status}`,
#: `{"running", <running key's value>}`, `{"cancelled", ""}` or `{"unknown", ""}` (no record, not
#: running, no message: the mark is kept, nothing is stored). `task-client` and the generated
#: callers of other languages (`task-contracts generate`) all run this text.
CANCEL_SCRIPT: Final = """\
local stored = redis.call('get', KEYS[1])
if stored then
  local ok, record = pcall(cjson.decode, stored)
  if ok and type(record) == 'table' and (ARGV[5] == '' or record['call_digest'] == ARGV[5]) then
    local status = record['status']
    if status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then
      return {'finished', status}
    end
  end
end
redis.call('set', KEYS[3], ARGV[1], 'EX', ARGV[2])
local running = redis.call('get', KEYS[2])
if running then return {'running', running} end
if ARGV[4] == '1' then return {'unknown', ''} end
redis.call('set', KEYS[1], ARGV[3], 'EX', ARGV[2])
redis.call('publish', KEYS[1], ARGV[3])
return {'cancelled', ''}
"""

#: Celery state of a call whose attempt failed and that will run again (a contract's `Retry`).
RETRY_STATE: Final = "RETRY"
#: Field of a RETRY or FAILURE record (and of any record after a retry): the attempt, from 1, that stored it.
ATTEMPT_FIELD: Final = "attempt"

#: Sorted set of the leases of the calls of a contract with `concurrency=N` running now, across
#: all workers: member = task id, score = lease end (Redis server time), so a crashed worker's
#: lease runs out instead of holding a slot forever.
CONCURRENCY_KEY_PREFIX: Final = "task-sdk-concurrency-"

#: Integrity (see docs/security.md). Every record a worker stores for a contract call carries
#: `call_digest`: the lowercase hex SHA-256 of the call's arguments as the worker received them,
#: `[args, kwargs]` in canonical JSON (`canonical_json`). A caller that knows its arguments refuses a
#: record whose digest differs (another message reused its id), and a worker never treats a call as
#: started or finished because of a message with the same id and another digest.
CALL_DIGEST_FIELD: Final = "call_digest"

#: Message header: the lowercase hex SHA-256 of the call's cancel token (a secret only its caller,
#: or a client sharing the caller's cancel secret, can make). A revoke mark then cancels the call
#: only if it carries that token; calls without the header (foreign producers) keep the old rule:
#: any revoke mark cancels them.
CANCEL_HASH_HEADER: Final = "cancel_hash"
#: The REVOKED record a canceller stores carries its cancel token in this field, so that the caller
#: can tell a genuine cancel from a forged REVOKED record.
CANCEL_TOKEN_FIELD: Final = "cancel_token"

#: Signed records (a worker with a signing key): `signature` is the base64 Ed25519 signature of
#: `SIGNATURE_CONTEXT + canonical_json(record without "signature")`, and `signer` the key's id
#: (`key_id`). Clients configured with the worker's public key accept no other record.
SIGNATURE_FIELD: Final = "signature"
SIGNER_FIELD: Final = "signer"
SIGNATURE_CONTEXT: Final = b"task-sdk-record-v1\n"

#: Remote error of a message refused because another call with another body used its id first; the
#: refusal is published on the message's reply channel only, never stored over the first call's record.
REMOTE_DUPLICATE_ID: Final = "DuplicateTaskId"


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (`_sha2`, `_sha256` in 3.11), else `hashlib`'s (OpenSSL's): the same
    digests. A call's digest is on the path of every call (the worker's admission), where OpenSSL's
    set-up of each hash, its code not in the CPU's caches, took 8 of the digest's 20 µs (measured
    on `client.add(4, 7)`'s worker, see the commit); a build without the module (FIPS) has hashlib's."""
    for name in ("_sha2", "_sha256"):
        try:
            sha256: Callable[[bytes], Any] = _importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return sha256
    return _hashlib.sha256


_sha256 = _builtin_sha256()

# Built once: `json.dumps` with these options builds an encoder per call (a third of a digest's work).
_CANONICAL = _json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def canonical_json(value: object) -> bytes:
    """The canonical JSON the digests and signatures cover: keys sorted, no spaces, ASCII only
    (Python's `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`)."""
    if _c_make_encoder is None:  # a Python without the C accelerator
        return _CANONICAL.encode(value).encode()
    # `_CANONICAL.encode`'s own C path, without its two Python steps (and the float formatter they
    # make each time, which the C path never uses): a digest is on the path of every call.
    encode = _c_make_encoder(
        {}, _CANONICAL.default, _encode_ascii, None, ":", ",", True, False, True
    )  # markers, default, string encoder, indent, separators, sort_keys, skipkeys, allow_nan
    return "".join(encode(value, 0)).encode()


def call_digest(args: Sequence[object], kwargs: Mapping[str, object]) -> str | None:
    """`CALL_DIGEST_FIELD` of a call: SHA-256 of `canonical_json([args, kwargs])`; None when the
    arguments are not plain JSON (then no digest is compared)."""
    try:
        return _sha256(canonical_json([list(args), dict(kwargs)])).hexdigest()  # type: ignore[no-any-return]
    except (TypeError, ValueError):
        return None


def cancel_hash(token: str) -> str:
    """`CANCEL_HASH_HEADER` of a call whose cancel token is `token`."""
    return _hashlib.sha256(token.encode()).hexdigest()


def key_id(public_key: bytes) -> str:
    """`SIGNER_FIELD`: the first 16 hex digits of the SHA-256 of the raw 32-byte Ed25519 public key."""
    return _hashlib.sha256(public_key).hexdigest()[:16]


def signed_text(record: dict[str, object]) -> bytes:
    """What a record's signature covers: the context line, then the record's canonical JSON without it."""
    return SIGNATURE_CONTEXT + canonical_json({key: value for key, value in record.items() if key != SIGNATURE_FIELD})
