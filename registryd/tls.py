"""Encrypted connections: how ``amqps://`` and ``rediss://`` check the server and log in.

:class:`TlsFiles` is one backend's TLS settings (a CA file, a client certificate and
key, server-name checking). The daemon builds them from its settings
(``Settings.amqp_tls``, ``Settings.redis_tls``); the client library reads the same
``REGISTRYD_AMQP_*`` variables with :meth:`TlsFiles.from_environ`. Without a CA file the
system's trusted CAs are used. Server-name checking is on unless turned off, which lets
anyone holding a certificate of that CA pose as the server: it is for tests only.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = ["TLS_SCHEMES", "Backend", "TlsFiles", "check_ca_file", "check_client_pair", "uses_tls"]

#: The URL schemes that mean "over TLS".
TLS_SCHEMES: Final = frozenset({"amqps", "rediss"})
#: The setting names' stem of each backend: ``REGISTRYD_AMQP_CA_FILE``, ``redis.ca_file``.
Backend = Literal["amqp", "redis"]
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def uses_tls(url: str) -> bool:
    """Whether ``url`` connects over TLS (``amqps://``, ``rediss://``)."""
    scheme = urlsplit(url).scheme.lower()
    # rediss+sentinel:// and rediss+cluster:// are TLS too.
    return scheme in TLS_SCHEMES or scheme.split("+", 1)[0] in TLS_SCHEMES


@dataclass(frozen=True)
class TlsFiles:
    """One backend's TLS settings: what to trust, who we are, whether names are checked."""

    #: PEM file of the CA(s) that signed the server's certificate; ``None``: the system's.
    ca_file: Path | None = None
    #: PEM client certificate (and its key) for servers that ask for one.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Check that the certificate names the host of the URL. Off is unsafe.
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """An SSL context for a client of this backend (reads the files now)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
        context.check_hostname = self.check_hostname
        return context

    def redis_kwargs(self) -> dict[str, object]:
        """redis-py's ``ssl_*`` connection arguments (for a ``rediss://`` URL only)."""
        return {
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": _text(self.ca_file),
            "ssl_certfile": _text(self.cert_file),
            "ssl_keyfile": _text(self.key_file),
            "ssl_check_hostname": self.check_hostname,
        }

    @classmethod
    def from_environ(cls, backend: Backend, environ: Mapping[str, str]) -> TlsFiles:
        """The daemon's ``REGISTRYD_<BACKEND>_*`` TLS variables, as the daemon reads them.

        Raises ``ValueError`` naming the variable when a check-hostname value is no
        boolean.
        """
        stem = f"REGISTRYD_{backend.upper()}_"

        def path(name: str) -> Path | None:
            value = environ.get(stem + name)
            return Path(value) if value else None

        return cls(
            ca_file=path("CA_FILE"),
            cert_file=path("CERT_FILE"),
            key_file=path("KEY_FILE"),
            check_hostname=_boolean(stem + "CHECK_HOSTNAME", environ),
        )


def check_ca_file(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` holds PEM CA certificates."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"is no PEM file of CA certificates ({_reason(exc)})") from None


def check_client_pair(cert_file: Path, key_file: Path | None) -> None:
    """Raise ``ValueError`` unless the certificate and its key (unencrypted) load."""
    try:
        ssl.create_default_context().load_cert_chain(cert_file, key_file, password=_no_password)
    except _EncryptedKey:
        raise ValueError(f"the key of {cert_file} is encrypted: give an unencrypted one") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot load the client certificate {cert_file} with its key ({_reason(exc)})"
        ) from None


class _EncryptedKey(Exception):
    """A key asked for a password: a daemon has no terminal to type one at."""


def _no_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal (and block the daemon).
    raise _EncryptedKey


def _reason(exc: OSError | ssl.SSLError) -> str:
    return str(exc.strerror or exc) if isinstance(exc, ssl.SSLError) else str(exc)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _boolean(name: str, environ: Mapping[str, str]) -> bool:
    value = environ.get(name, "true").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} must be true or false")
