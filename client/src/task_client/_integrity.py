"""Which result records a client accepts (see docs/security.md).

- A record of a call this client published must carry the digest of that call's arguments, if it
  carries one at all: another message that reused the id (anyone who may push to a queue can send
  one) gets a record with another digest, which is refused rather than returned as this call's value.
- A REVOKED record that a canceller wrote carries its cancel token; for a call of this client it
  must be this call's token, which only a client holding the same cancel secret can make.
- With the workers' public key configured (`verify_key_file`), only records signed by a worker key
  are accepted, or REVOKED records carrying this client's cancel token for the call (a cancel
  by this client or one sharing its secret). A forged SET of the result key or PUBLISH on a reply
  channel is then refused, logged, and the wait goes on for the genuine record.

A refused record is never returned; when no other came within the bound, the wait ends with
`RecordRefused` (a `TaskTimeout`) naming why.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from task_contracts.wire import (
    CALL_DIGEST_FIELD,
    CANCEL_TOKEN_FIELD,
    SIGNATURE_FIELD,
    SIGNER_FIELD,
    call_digest,
    key_id,
    signed_text,
)

from ._errors import VerifyKeyError
from ._settings import ClientSettings

logger = logging.getLogger(__name__)

#: Calls (and refusals) remembered per client: bounds memory for calls published and never waited for.
_REMEMBERED = 100_000
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class _Unhashed:
    """A call's wire arguments whose digest is not computed yet (see `RecordCheck.expect`)."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs

    def digest(self) -> str:
        try:
            return call_digest(self.args, self.kwargs) or ""
        except RecursionError:  # nested deeper than JSON is written (nor was the call: `call_digest`'s None)
            return ""


class RecordCheck:
    """The checks above, for one client; thread-safe."""

    def __init__(self, settings: ClientSettings) -> None:
        self._secret = settings.cancel_secret
        # Copied per token: OpenSSL's one-shot HMAC looks up HMAC and SHA-256 by name every time,
        # a long walk through its provider tables that costs most where it counts, after the
        # caller slept (measured in a sequential caller: 16.7 -> 7.5 µs per cancel hash).
        self._token_mac = hmac.new(self._secret, digestmod="sha256")
        self._keys = load_verify_keys(settings.verify_key_file) if settings.verify_key_file else None
        self._lock = threading.Lock()
        # task id -> digest of its arguments ("" when none), or the arguments until it is computed
        self._mine: dict[str, str | _Unhashed] = {}
        self._refused: dict[str, str] = {}  # task id -> why its last refused record was refused

    def forked(self) -> None:
        """In a forked child: a lock of its own (a thread of the parent may have held this one at the
        fork, and no thread is left here to release it)."""
        self._lock = threading.Lock()

    @property
    def verifies_signatures(self) -> bool:
        return self._keys is not None

    def cancel_token(self, task_id: str) -> str:
        """The call's cancel token: HMAC-SHA256 of its id under the client's cancel secret (hex)."""
        mac = self._token_mac.copy()
        mac.update(task_id.encode())
        return mac.hexdigest()

    def expect(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Remember a call this client publishes, with its wire arguments.

        Hot path (measured): their digest is computed by `settle`, once the call's message is written
        and the worker has it to run, not before; a check that needs it earlier computes it then.
        """
        with self._lock:
            _bounded_put(self._mine, task_id, _Unhashed(args, kwargs))

    def settle(self, task_id: str) -> None:
        """Compute the digest of an expected call's arguments now (`expect`)."""
        self._digest(task_id)

    def published(self, task_id: str) -> bool:
        """Whether this client published a call with this id (among the last `_REMEMBERED`)."""
        return task_id in self._mine

    def digest(self, task_id: str) -> str | None:
        """The digest of the arguments of a call this client published, if known."""
        return self._digest(task_id) or None

    def _digest(self, task_id: str) -> str | None:
        """The digest remembered for `task_id` ("" when its arguments have none), None if not remembered."""
        mine = self._mine.get(task_id)
        if type(mine) is not _Unhashed:
            return mine  # type: ignore[return-value]
        digest = mine.digest()
        with self._lock:
            if self._mine.get(task_id) is mine:  # not forgotten (`_REMEMBERED`) or expected again meanwhile
                self._mine[task_id] = digest
        return digest

    def accepts(self, task_id: str, record: dict[str, Any]) -> bool:
        """True if `record` may be taken as the call's; else the refusal is logged and remembered."""
        reason = self._refusal(task_id, record)
        if reason is None:
            return True
        logger.warning("refused a record for %s (%s): %s", task_id, record.get("status"), reason)
        with self._lock:
            _bounded_put(self._refused, task_id, reason)
        return False

    def refused(self, task_id: str) -> str | None:
        """Why a record for `task_id` was last refused, if one was."""
        return self._refused.get(task_id)

    def _refusal(self, task_id: str, record: dict[str, Any]) -> str | None:
        mine = self._digest(task_id)
        theirs = record.get(CALL_DIGEST_FIELD)
        if mine and isinstance(theirs, str) and not hmac.compare_digest(theirs, mine):
            return "it belongs to another call that reused this id (its arguments differ)"
        token = record.get(CANCEL_TOKEN_FIELD)
        cancelled_here = isinstance(token, str) and hmac.compare_digest(token, self.cancel_token(task_id))
        if mine is not None and token is not None and not cancelled_here:
            return "a REVOKED record without this call's cancel token (a cancel by someone else)"
        if self._keys is None:
            return None
        if _verified(self._keys, record):
            return None
        if record.get("status") == "REVOKED" and cancelled_here:
            return None  # cancelled by this client, or by one holding its cancel secret
        return "not signed by a trusted worker key"


def _verified(keys: dict[str, Any], record: dict[str, Any]) -> bool:
    from cryptography.exceptions import InvalidSignature

    key = keys.get(record.get(SIGNER_FIELD))  # type: ignore[arg-type]
    signature = record.get(SIGNATURE_FIELD)
    if key is None or not isinstance(signature, str):
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), signed_text(record))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def load_verify_keys(path: str) -> dict[str, Any]:
    """The Ed25519 public keys in a PEM file, by key id; `VerifyKeyError` naming what is wrong."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
    except ImportError:
        raise VerifyKeyError("verifying records needs `cryptography`: pip install 'task-client[signing]'") from None
    try:
        blocks = _PEM_BLOCK.findall(Path(path).read_bytes())
    except OSError as error:
        raise VerifyKeyError(f"verify key file {path}: {error}") from None
    keys: dict[str, Any] = {}
    for block in blocks:
        try:
            key = load_pem_public_key(block)
        except ValueError as error:
            raise VerifyKeyError(f"verify key file {path}: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise VerifyKeyError(f"verify key file {path}: not an Ed25519 public key ({type(key).__name__})")
        keys[key_id(key.public_bytes(Encoding.Raw, PublicFormat.Raw))] = key
    if not keys:
        raise VerifyKeyError(f"verify key file {path}: no PEM public key in it")
    return keys


def _bounded_put(table: dict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    if len(table) > _REMEMBERED:
        del table[next(iter(table))]
