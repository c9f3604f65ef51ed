"""Signed result records: a worker holding an Ed25519 private key signs every record it stores or
publishes, so a client holding the public half can refuse a record written by anyone else (a
client-role Redis user can SET a result key or PUBLISH on a reply channel; see docs/security.md).

The key is a PEM file (PKCS#8, unencrypted), named by `--signing-key-file` / `TASK_SIGNING_KEY_FILE`;
`task-server keygen` writes a pair. `cryptography` is needed only then (`task-server[signing]`).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from task_contracts.wire import SIGNATURE_FIELD, SIGNER_FIELD, key_id, signed_text

from ._errors import SigningKeyError

#: `app.conf` key holding the path of the worker's signing key (None: records are not signed).
SIGNING_KEY_SETTING = "task_sdk_signing_key_file"


class RecordSigner:
    """Signs records with one Ed25519 private key (about 50 µs per record)."""

    def __init__(self, private_key: Any) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._key = private_key
        self.key_id = key_id(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RecordSigner:
        """Load a PEM Ed25519 private key; `SigningKeyError` naming the file and what is wrong."""
        serialization, ed25519 = _cryptography()
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise SigningKeyError(f"signing key {path}: {error}") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise SigningKeyError(f"signing key {path}: not an Ed25519 private key ({type(key).__name__})")
        return cls(key)

    def sign_json(self, value: str | bytes) -> str:
        """The JSON record `value` with `signer` and `signature` added (what is signed is its parsed
        content in canonical form, so any JSON writer's output verifies alike)."""
        record = json.loads(value)
        record.pop(SIGNATURE_FIELD, None)
        record[SIGNER_FIELD] = self.key_id
        record[SIGNATURE_FIELD] = base64.b64encode(self._key.sign(signed_text(record))).decode()
        return json.dumps(record)


def generate_key_pair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 private key (mode 0600) and its public half as PEM files; the key id."""
    serialization, ed25519 = _cryptography()
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(private)
    public_path.write_bytes(public)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key_id(raw)


def _cryptography() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningKeyError(
            "signed records need the `cryptography` package: pip install 'task-server[signing]'"
        ) from None
    return serialization, ed25519
