"""Certificates the tests make, and a TLS-only private redis-server.

The certificates are made in-process with ``cryptography`` (already a dependency of the
Buildbot extra, now a declared dev dependency): no ``openssl`` subprocess per file, and
every field (SANs, usages, validity) is explicit and typed. EC P-256 keys, which
OpenSSL (Redis, Python) and Erlang (RabbitMQ) all accept, are made in milliseconds.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from redis.asyncio import Redis

from registryd.tls import TlsFiles
from tests.harness.services import free_port, wait_for

__all__ = ["Pki", "TlsRedis", "make_pki"]

#: The names the server certificate lists; 127.0.0.2 (also loopback) is not one of them.
SERVER_NAMES = ("localhost", "127.0.0.1")
UNLISTED_HOST = "127.0.0.2"
_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    """A test CA with a server and a client certificate, and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: A CA that signed nothing here: trusting it instead of :attr:`ca` must fail.
    other_ca: Path

    def client(self, *, ca: Path | None = None, check_hostname: bool = True) -> TlsFiles:
        """The client's settings: this CA (or ``ca``) and the client certificate."""
        return TlsFiles(ca or self.ca, self.client_cert, self.client_key, check_hostname)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + _DAY)
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        _builder(common_name, _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
    names: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    ca_cert, ca_key = ca
    builder = (
        _builder(common_name, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(names)), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _sans(names: tuple[str, ...]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    return sans


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def make_pki(directory: Path, owner: str = "rabbitmq") -> Pki:
    """Write a CA, a server cert (SAN localhost, 127.0.0.1), a client cert, another CA.

    The files are given to ``owner`` (RabbitMQ reads them as that user); the directory
    must be one the test owns.
    """
    ca = _ca("registryd test CA")
    server = _leaf("localhost", ca, ExtendedKeyUsageOID.SERVER_AUTH, SERVER_NAMES)
    client = _leaf("registryd-test-client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    other, _ = _ca("registryd unrelated CA")
    pki = Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
    _write_cert(pki.ca, ca[0])
    _write_cert(pki.server_cert, server[0])
    _write_key(pki.server_key, server[1])
    _write_cert(pki.client_cert, client[0])
    _write_key(pki.client_key, client[1])
    _write_cert(pki.other_ca, other)
    user = pwd.getpwnam(owner)
    for path in (directory, *directory.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    return pki


class TlsRedis:
    """A redis-server of the test's own that speaks TLS only (``--port 0``), on a free port.

    It listens on 127.0.0.1 and on :data:`UNLISTED_HOST`, a loopback address its
    certificate does not name. ``auth_clients``: ``yes`` (a client certificate is
    required), ``optional`` or ``no``.
    """

    def __init__(self, pki: Pki, auth_clients: str = "yes", password: str | None = None) -> None:
        self.pki = pki
        self.auth_clients = auth_clients
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "localhost") -> str:
        """Its ``rediss://`` URL by ``host``."""
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}{host}:{self.port}/0"

    def _command(self) -> list[str]:
        command = [
            "redis-server",
            "--bind", "127.0.0.1", UNLISTED_HOST,
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.pki.server_cert),
            "--tls-key-file", str(self.pki.server_key),
            "--tls-ca-cert-file", str(self.pki.ca),
            "--tls-auth-clients", self.auth_clients,
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        return command

    def _spawn(self) -> None:
        self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL)

    async def start(self) -> None:
        """Start it and wait until a TLS client with the client certificate gets PONG."""
        self._spawn()
        tls = self.pki.client()
        client = Redis.from_url(self.url(), **tls.redis_kwargs())  # type: ignore[arg-type]
        try:

            async def answers() -> bool:
                assert self.process is not None
                assert self.process.poll() is None, "redis-server exited"
                try:
                    return bool(await client.ping())
                except Exception:  # noqa: BLE001 - redis-py's ConnectionError while it starts
                    await asyncio.sleep(0.05)
                    return False

            await wait_for(answers, 10)
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Kill it (by its PID)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
