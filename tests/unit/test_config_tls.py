"""TLS settings: TOML keys and variables like the others, checked files, clear errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from redis.exceptions import ConnectionError as RedisConnectionError

from registryd.config import Settings, load_settings
from registryd.diagnose import refusal
from registryd.errors import ConfigError
from registryd.tls import TlsFiles
from tests.harness.tls import Pki, make_pki

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates of a test CA (owned by root: no server reads them here)."""
    return make_pki(tmp_path_factory.mktemp("pki"), owner="root")


def test_toml_keys_and_variables_and_their_defaults(tmp_path: Path, pki: Pki) -> None:
    """``[amqp] ca_file`` is ``REGISTRYD_AMQP_CA_FILE``; the variable wins; checking is on."""
    config = tmp_path / "registryd.toml"
    config.write_text(
        f'[amqp]\nurl = "amqps://h/"\nca_file = "{pki.other_ca}"\ncert_file = "{pki.client_cert}"\n'
        f'key_file = "{pki.client_key}"\n[redis]\nurl = "rediss://h/0"\ncheck_hostname = false\n'
    )
    settings = load_settings(config, environ={"REGISTRYD_AMQP_CA_FILE": str(pki.ca)})
    assert settings.amqp_tls == TlsFiles(
        pki.ca, pki.client_cert, pki.client_key, check_hostname=True
    )
    assert settings.redis_tls == TlsFiles(None, None, None, check_hostname=False)
    assert Settings().amqp_tls == Settings().redis_tls == TlsFiles()


def test_the_example_tls_config_loads(tmp_path: Path, pki: Pki) -> None:
    """config/tls.toml, with its files made, sets both backends' four settings."""
    text = (CONFIG / "tls.toml").read_text(encoding="utf-8")
    for name, path in (
        ("ca.pem", pki.ca),
        ("registryd.pem", pki.client_cert),
        ("registryd.key", pki.client_key),
    ):
        text = text.replace(f"/etc/registryd/tls/{name}", str(path))
    config = tmp_path / "tls.toml"
    config.write_text(text)
    settings = load_settings(config, environ={})
    expected = TlsFiles(pki.ca, pki.client_cert, pki.client_key, check_hostname=True)
    assert settings.amqp_tls == settings.redis_tls == expected
    assert settings.amqp_url.startswith("amqps://")
    assert settings.redis_url.startswith("rediss://")


def _error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=environ)
    return str(raised.value)


def test_a_tls_setting_for_a_plain_url_is_an_error(pki: Pki) -> None:
    """The files would be ignored: say so, naming the URL's variable."""
    message = _error({"REGISTRYD_REDIS_CA_FILE": str(pki.ca)})
    assert message == (
        f"invalid configuration: REGISTRYD_REDIS_CA_FILE={str(pki.ca)!r}: applies to "
        "rediss:// URLs only (REGISTRYD_REDIS_URL)"
    )
    assert "amqps:// URLs only" in _error({"REGISTRYD_AMQP_CHECK_HOSTNAME": "false"})


def test_files_that_cannot_be_used_are_errors(tmp_path: Path, pki: Pki) -> None:
    """Missing, not PEM, a key of another certificate, an encrypted key, a key alone."""
    tls = {"REGISTRYD_AMQP_URL": "amqps://h/"}
    missing = _error(tls | {"REGISTRYD_AMQP_CA_FILE": str(tmp_path / "none.pem")})
    assert "REGISTRYD_AMQP_CA_FILE=" in missing
    assert "must be an existing file" in missing
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    assert "is no PEM file of CA certificates" in _error(
        tls | {"REGISTRYD_AMQP_CA_FILE": str(not_pem)}
    )
    other_key = {"REGISTRYD_AMQP_CERT_FILE": str(pki.server_cert)}
    assert f"cannot load the client certificate {pki.server_cert} with its key" in _error(
        tls | other_key | {"REGISTRYD_AMQP_KEY_FILE": str(pki.client_key)}
    )
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    client = {"REGISTRYD_AMQP_CERT_FILE": str(pki.client_cert)}
    assert "is encrypted: give an unencrypted one" in _error(
        tls | client | {"REGISTRYD_AMQP_KEY_FILE": str(encrypted)}
    )
    assert "needs REGISTRYD_AMQP_CERT_FILE too" in _error(
        tls | {"REGISTRYD_AMQP_KEY_FILE": str(pki.client_key)}
    )
    assert "REGISTRYD_REDIS_CHECK_HOSTNAME='maybe': must be true or false" in _error(
        {"REGISTRYD_REDIS_URL": "rediss://h/0", "REGISTRYD_REDIS_CHECK_HOSTNAME": "maybe"}
    )


def test_the_client_reads_the_daemons_variables() -> None:
    """``TlsFiles.from_environ``: the client library's reading of the same variables."""
    environ = {"REGISTRYD_AMQP_CA_FILE": "/ca.pem", "REGISTRYD_AMQP_CHECK_HOSTNAME": "No"}
    assert TlsFiles.from_environ("amqp", environ) == TlsFiles(Path("/ca.pem"), check_hostname=False)
    assert TlsFiles.from_environ("redis", environ) == TlsFiles()
    with pytest.raises(ValueError, match="REGISTRYD_AMQP_CHECK_HOSTNAME='perhaps'"):
        TlsFiles.from_environ("amqp", {"REGISTRYD_AMQP_CHECK_HOSTNAME": "perhaps"})


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def test_tls_refusals_name_the_backend_and_the_setting() -> None:
    """A bare ssl error is RabbitMQ's (aiormq raises it as is), a redis-py one Redis's."""
    untrusted = _verify_error(20, "unable to get local issuer certificate")
    found = refusal(
        untrusted, amqp_url="amqps://u:pw@h:5671/", amqp_tls=TlsFiles(Path("/x/ca.pem"))
    )
    assert found is not None
    assert (found.backend, found.reason) == ("RabbitMQ", "TLS certificate verify failed")
    assert found.message.startswith(
        "RabbitMQ at amqps://u@h:5671/: TLS certificate verify failed (unable to get local "
        "issuer certificate; REGISTRYD_AMQP_CA_FILE=/x/ca.pem); retrying will not fix this"
    )
    try:
        try:
            raise _verify_error(62, "Hostname mismatch, certificate is not valid for 'h'.")
        except OSError:
            raise RedisConnectionError("Error 1 connecting to h:6380.")  # noqa: B904 - as redis-py
    except RedisConnectionError as wrapped:
        found = refusal(wrapped, redis_url="rediss://:pw@h:6380/0")
    assert found is not None
    assert (found.backend, found.reason) == ("Redis", "TLS server name mismatch")
    assert "REGISTRYD_REDIS_URL" in found.message
    assert "pw" not in found.message
