"""Signed records, digests and cancel tokens end to end without Redis: what the worker's signer writes and
which records a client accepts (`task_client._integrity`), and clear errors for bad key files."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from task_client import VerifyKeyError
from task_client._integrity import RecordCheck
from task_client._settings import ClientSettings
from task_contracts import resolve_urls
from task_contracts.wire import call_digest, cancel_hash, canonical_json
from task_server._errors import SigningKeyError
from task_server._signing import RecordSigner, generate_key_pair

TASK_ID = "8f3c3a4e-0c7e-4a8e-9d0b-0f6f0e0d2a11"


def settings(verify_key_file: Path | None = None, secret: bytes = b"s" * 32) -> ClientSettings:
    return ClientSettings(
        urls=resolve_urls("redis://127.0.0.1:1/0", None),
        cancel_secret=secret,
        verify_key_file=str(verify_key_file) if verify_key_file else None,
    )


def success(value: object = 11, digest: str | None = None) -> dict[str, object]:
    record: dict[str, object] = {"status": "SUCCESS", "result": value, "task_id": TASK_ID}
    if digest:
        record["call_digest"] = digest
    return record


def test_the_digest_is_sha256_of_canonical_json() -> None:
    assert call_digest([4, 7], {}) == "a245b89c42e92fc48fd185c1eb648715af5ef00d9ba588f5ef38fc2ff5a1d2ca"
    assert call_digest((4, 7), {}) == call_digest([4, 7], {})
    assert call_digest([], {"b": 1, "a": 2}) == call_digest([], {"a": 2, "b": 1})
    assert call_digest([object()], {}) is None
    looped: list[object] = []
    looped.append(looped)
    assert call_digest([looped], {}) is None  # refused as json.dumps refuses it (ValueError), not a crash


def test_canonical_json_fails_as_json_dumps_fails() -> None:
    looped: dict[str, object] = {}
    looped["self"] = looped
    for value, error in ((looped, ValueError), ({"a": object()}, TypeError), ({1.5: float("nan")}, None)):
        if error is None:
            assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
            continue
        with pytest.raises(error) as expected:
            json.dumps(value, sort_keys=True, separators=(",", ":"))
        with pytest.raises(error) as raised:
            canonical_json(value)
        assert str(raised.value) == str(expected.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.lists(JSON, max_size=4), st.dictionaries(st.text(), JSON, max_size=4))
def test_the_digest_is_hashlib_s_sha256_of_canonical_json(args: list[object], kwargs: dict[str, object]) -> None:
    # Computed by CPython's own SHA-256 where it has one: the same digest as OpenSSL's.
    expected = hashlib.sha256(canonical_json([args, kwargs])).hexdigest()
    assert call_digest(args, kwargs) == expected


@given(JSON)
def test_canonical_json_is_what_its_documentation_says(value: object) -> None:
    # Other languages' callers compute digests from this definition (docs/wire.md).
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    assert canonical_json(value) == expected.encode()


@pytest.mark.parametrize("settled", [True, False], ids=["settled", "before-settle"])
def test_a_record_of_another_call_with_the_same_id_is_refused(settled: bool) -> None:
    # A record that comes before the call's digest is computed (`settle`, after the LPUSH) is
    # checked against the same digest, computed then.
    check = RecordCheck(settings())
    check.expect(TASK_ID, [4, 7], {})
    if settled:
        check.settle(TASK_ID)
    assert check.digest(TASK_ID) == call_digest([4, 7], {})
    assert not check.accepts(TASK_ID, success(2000, call_digest([1000, 1000], {})))
    assert check.refused(TASK_ID) == "it belongs to another call that reused this id (its arguments differ)"
    assert check.accepts(TASK_ID, success(11, call_digest([4, 7], {})))
    assert check.accepts(TASK_ID, success(11))  # no digest (an older worker): not compared
    assert check.accepts("someone-elses-id", success(2000, "0" * 64))  # not a call of this client


def test_a_cancel_is_this_clients_only_with_its_token() -> None:
    check, other = RecordCheck(settings()), RecordCheck(settings(secret=b"o" * 32))
    assert check.cancel_token(TASK_ID) != other.cancel_token(TASK_ID)
    assert len(cancel_hash(check.cancel_token(TASK_ID))) == 64
    check.expect(TASK_ID, [4, 7], {})
    revoked = {"status": "REVOKED", "task_id": TASK_ID}
    assert not check.accepts(TASK_ID, {**revoked, "cancel_token": other.cancel_token(TASK_ID)})
    assert check.accepts(TASK_ID, {**revoked, "cancel_token": check.cancel_token(TASK_ID)})
    assert check.accepts(TASK_ID, revoked)  # a worker's REVOKED record carries no token


def test_a_cancel_token_is_hmac_sha256_of_the_id_under_the_secret() -> None:
    # What another client holding the secret (any language) computes; the same for every call.
    check = RecordCheck(settings())
    for task_id in (TASK_ID, "another-id", TASK_ID):
        assert check.cancel_token(task_id) == hmac.new(b"s" * 32, task_id.encode(), hashlib.sha256).hexdigest()


def test_with_a_verify_key_only_signed_records_or_own_cancels_are_accepted(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "w.key", tmp_path / "w.pub")
    signer = RecordSigner.from_file(tmp_path / "w.key")
    check = RecordCheck(settings(tmp_path / "w.pub"))
    check.expect(TASK_ID, [4, 7], {})
    signed = json.loads(signer.sign_json(json.dumps(success(11, call_digest([4, 7], {})))))
    assert signed["signer"] == signer.key_id
    assert check.accepts(TASK_ID, signed)
    assert not check.accepts(TASK_ID, {**signed, "result": 2000})  # tampered
    assert check.refused(TASK_ID) == "not signed by a trusted worker key"
    assert not check.accepts(TASK_ID, success(11, call_digest([4, 7], {})))  # unsigned
    assert not check.accepts(TASK_ID, {**signed, "signature": "not base64!"})
    own_cancel = {"status": "REVOKED", "task_id": TASK_ID, "cancel_token": check.cancel_token(TASK_ID)}
    assert check.accepts(TASK_ID, own_cancel)
    assert not check.accepts(TASK_ID, {"status": "REVOKED", "task_id": TASK_ID})
    # The impostor's record is signed by a worker too, but carries its own digest.
    impostor = json.loads(signer.sign_json(json.dumps(success(2000, call_digest([1000, 1000], {})))))
    assert not check.accepts(TASK_ID, impostor)


def test_several_public_keys_in_one_file_for_rotation(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "old.key", tmp_path / "old.pub")
    generate_key_pair(tmp_path / "new.key", tmp_path / "new.pub")
    both = tmp_path / "both.pub"
    both.write_bytes((tmp_path / "old.pub").read_bytes() + (tmp_path / "new.pub").read_bytes())
    check = RecordCheck(settings(both))
    for name in ("old", "new"):
        record = json.loads(RecordSigner.from_file(tmp_path / f"{name}.key").sign_json(json.dumps(success())))
        assert check.accepts(TASK_ID, record)


def test_bad_key_files_are_clear_errors(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "w.key", tmp_path / "w.pub")
    with pytest.raises(VerifyKeyError, match="no PEM public key"):
        RecordCheck(settings(tmp_path / "w.key"))  # the private half
    with pytest.raises(VerifyKeyError, match="No such file"):
        RecordCheck(settings(tmp_path / "missing.pub"))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pub").write_bytes(
        ec_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(VerifyKeyError, match="not an Ed25519 public key"):
        RecordCheck(settings(tmp_path / "ec.pub"))
    (tmp_path / "ec.key").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 private key"):
        RecordSigner.from_file(tmp_path / "ec.key")
    with pytest.raises(SigningKeyError, match="signing key"):
        RecordSigner.from_file(tmp_path / "w.pub")
    with pytest.raises(FileExistsError):
        generate_key_pair(tmp_path / "w.key", tmp_path / "again.pub")  # never overwrites a key


def test_arguments_that_are_not_json_have_no_digest_and_records_are_not_compared() -> None:
    deep: list[Any] = []
    for _ in range(100_000):  # deeper than JSON is written: RecursionError inside, no digest
        deep = [deep]
    check = RecordCheck(settings())
    for arguments in ([object()], [deep]):
        check.expect(TASK_ID, arguments, {})
        check.settle(TASK_ID)
        assert check.published(TASK_ID) and check.digest(TASK_ID) is None
        assert check.accepts(TASK_ID, success(11, call_digest([4, 7], {})))
