"""Why a backend turns registryd away for good, in one line that says what to fix.

A wrong password, a missing vhost or a missing permission does not heal by retrying,
unlike a backend that is down. :func:`refusal` finds such an error anywhere in an
exception's chain of causes (registryd wraps backend errors in its own) and explains
it: the backend, what it refused, and the setting to correct. ``None`` means the
failure may heal. :class:`RefusalLog` logs each distinct refusal once, at error level,
for a loop that keeps retrying (an administrator may still fix the broker's side).

aiormq reports a refused vhost only as an unexpected ``Connection.Close`` frame in
answer to ``Connection.Open`` (its reply text is lost): that is recognised by its text.

TLS failures are refusals too: a certificate the CA file does not vouch for, a server
name the certificate does not list, a client certificate missing or refused. Python's
``ssl`` errors are the same for both backends: one wrapped in a redis-py error is
Redis's, a bare one (aiormq raises it as it is) RabbitMQ's.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol
from urllib.parse import unquote, urlsplit

import structlog
from aiormq.exceptions import (
    AuthenticationError,
    ChannelAccessRefused,
    ConnectionNotAllowed,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import NoPermissionError as RedisNoPermissionError
from redis.exceptions import RedisError
from redis.exceptions import ResponseError as RedisResponseError

from registryd.tls import Backend, TlsFiles

__all__ = [
    "NO_RETRY",
    "BackendSettings",
    "Refusal",
    "RefusalLog",
    "configured_refusal",
    "refusal",
]

log = structlog.get_logger(__name__)

#: The hint every refusal ends with.
NO_RETRY: Final = "retrying will not fix this"
_AMQP_SETTING: Final = "REGISTRYD_AMQP_URL (amqp.url)"
_REDIS_SETTING: Final = "REGISTRYD_REDIS_URL (redis.url)"
_PERMISSIONS: Final = "docs/protocol.md section 10 lists them"
#: OpenSSL's verify codes of a name the certificate does not list (host, IP address).
_NAME_MISMATCH: Final = frozenset({62, 64})
_NO_TLS: Final = TlsFiles()


@dataclass(frozen=True)
class Refusal:
    """A backend's refusal that retrying will not fix."""

    backend: Literal["RabbitMQ", "Redis"]
    #: Short and stable: ``access refused``, ``vhost not found``, ``no such database``.
    reason: str
    #: One line: the backend, what it refused, what to fix, and that retrying will not.
    message: str

    def __str__(self) -> str:
        return self.message


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


@dataclass(frozen=True)
class _Where:
    """The parts of a URL an explanation names (never the password)."""

    url: str
    tls: TlsFiles = _NO_TLS

    @property
    def user(self) -> str:
        return unquote(urlsplit(self.url).username or "guest")

    @property
    def vhost(self) -> str:
        return unquote(urlsplit(self.url).path[1:]) or "/"

    @property
    def shown(self) -> str:
        """The URL without its password; every host of a list (sentinels, cluster nodes)."""
        parts = urlsplit(self.url)
        user = f"{parts.username}@" if parts.username else ""
        hosts = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{user}{hosts}{parts.path}"


def _rabbitmq(error: BaseException, where: _Where) -> Refusal | None:
    if isinstance(error, ProbableAuthenticationError | AuthenticationError):
        return Refusal(
            "RabbitMQ",
            "access refused",
            f"RabbitMQ at {where.shown} refused the login of user {where.user!r} "
            f"(ACCESS_REFUSED: wrong user name or password); {NO_RETRY}: "
            f"correct {_AMQP_SETTING}",
        )
    text = str(error)
    if isinstance(error, InvalidFrameError) and "Connection.Close" in text:
        return Refusal(
            "RabbitMQ",
            "vhost not found",
            f"RabbitMQ at {where.shown} refused to open vhost {where.vhost!r} for user "
            f"{where.user!r} (NOT_ALLOWED: vhost not found, or the user has no permissions "
            f"on it); {NO_RETRY}: create the vhost, grant the user access "
            f"(rabbitmqctl set_permissions -p {where.vhost} {where.user} ...) "
            f"or correct {_AMQP_SETTING}",
        )
    if isinstance(error, ChannelAccessRefused | ConnectionNotAllowed):
        detail = error.args[-1] if error.args else text
        return Refusal(
            "RabbitMQ",
            "access refused",
            f"RabbitMQ refused user {where.user!r} an operation ({detail}); {NO_RETRY}: "
            f"grant the user the permissions registryd needs ({_PERMISSIONS})",
        )
    return None


#: redis-py's Sentinel gives up with the sentinels' own errors in its text: a refused
#: login (no password, or a wrong one) is one of these there.
_SENTINEL_LOGIN: Final = re.compile(
    r"AuthenticationError|invalid username-password|Authentication required"
)


def _redis(error: BaseException, where: _Where) -> Refusal | None:
    if isinstance(error, RedisAuthenticationError):
        return Refusal(
            "Redis",
            "access refused",
            f"Redis at {where.shown} refused the login ({error}); {NO_RETRY}: "
            f"correct the user name or password in {_REDIS_SETTING}",
        )
    if isinstance(error, RedisNoPermissionError):
        return Refusal(
            "Redis",
            "access refused",
            f"Redis at {where.shown} refused an operation ({error}); {NO_RETRY}: "
            "give the user the commands and keys registryd needs (Redis ACL)",
        )
    if isinstance(error, MasterNotFoundError) and _SENTINEL_LOGIN.search(str(error)):
        return Refusal(
            "Redis",
            "access refused",
            f"the sentinels at {where.shown} refused the login ({error}); {NO_RETRY}: set "
            "REGISTRYD_REDIS_SENTINEL_USERNAME and _PASSWORD (redis.sentinel_username, "
            "redis.sentinel_password) to the sentinels' own",
        )
    if isinstance(error, RedisResponseError) and "DB index" in str(error):
        return Refusal(
            "Redis",
            "no such database",
            f"Redis at {where.shown} has no such database ({error}); {NO_RETRY}: "
            f"correct the database number in {_REDIS_SETTING}",
        )
    return None


def _tls_setting(backend: Backend, name: str) -> str:
    return f"REGISTRYD_{backend.upper()}_{name.upper()} ({backend}.{name})"


def _tls(error: BaseException, backend: Backend, where: _Where) -> Refusal | None:
    """A TLS handshake that will fail again, in the words of the settings to correct."""
    name: Literal["RabbitMQ", "Redis"] = "Redis" if backend == "redis" else "RabbitMQ"
    if isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in _NAME_MISMATCH:
            return Refusal(
                name,
                "TLS server name mismatch",
                f"{name} at {where.shown}: TLS server name check failed "
                f"({error.verify_message}); {NO_RETRY}: connect by a name the server's "
                f"certificate lists (in REGISTRYD_{backend.upper()}_URL) or give the server "
                "a certificate for this name",
            )
        ca = where.tls.ca_file or "unset: the system's CAs"
        ca_setting = _tls_setting(backend, "ca_file")
        return Refusal(
            name,
            "TLS certificate verify failed",
            f"{name} at {where.shown}: TLS certificate verify failed ({error.verify_message}; "
            f"REGISTRYD_{backend.upper()}_CA_FILE={ca}); {NO_RETRY}: point {ca_setting} "
            "at the CA that signed the server's certificate",
        )
    reason = str(getattr(error, "reason", "") or "") if isinstance(error, ssl.SSLError) else ""
    # The server's alerts about our certificate (not HANDSHAKE_FAILURE: ciphers too).
    if reason.endswith(("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE")):
        cert = where.tls.cert_file or "unset"
        return Refusal(
            name,
            "TLS client certificate refused",
            f"{name} at {where.shown} refused the TLS client certificate ({reason}; "
            f"REGISTRYD_{backend.upper()}_CERT_FILE={cert}); {NO_RETRY}: set "
            f"{_tls_setting(backend, 'cert_file')} and {_tls_setting(backend, 'key_file')} "
            "to a certificate (and its key) of a CA the server trusts",
        )
    return None


def _backend(error: BaseException) -> Backend:
    """Whose error it is: Redis's if redis-py raised it (or a cause), else RabbitMQ's."""
    return "redis" if any(isinstance(e, RedisError) for e in _chain(error)) else "amqp"


def refusal(
    error: BaseException,
    *,
    amqp_url: str = "amqp://",
    redis_url: str = "redis://",
    amqp_tls: TlsFiles = _NO_TLS,
    redis_tls: TlsFiles = _NO_TLS,
) -> Refusal | None:
    """The refusal behind ``error`` (or one of its causes); ``None`` if it may heal.

    The URLs (the configured ones) name the user, the vhost and the server; the TLS
    settings name the files.
    """
    amqp, redis = _Where(amqp_url, amqp_tls), _Where(redis_url, redis_tls)
    backend = _backend(error)
    for cause in _chain(error):
        found = (
            _rabbitmq(cause, amqp)
            or _redis(cause, redis)
            or _tls(cause, backend, redis if backend == "redis" else amqp)
        )
        if found is not None:
            return found
    return None


class BackendSettings(Protocol):
    """The settings that name the backends (:class:`registryd.config.Settings` has them)."""

    @property
    def amqp_urls(self) -> Sequence[str]:
        """The broker URLs; the first one is named."""

    @property
    def redis_url(self) -> str:
        """The Redis URL."""

    @property
    def amqp_tls(self) -> TlsFiles:
        """The broker's TLS files."""

    @property
    def redis_tls(self) -> TlsFiles:
        """Redis's TLS files."""


def configured_refusal(error: BaseException, settings: BackendSettings) -> Refusal | None:
    """:func:`refusal`, the backends named as ``settings`` configure them."""
    return refusal(
        error,
        amqp_url=settings.amqp_urls[0],
        redis_url=settings.redis_url,
        amqp_tls=settings.amqp_tls,
        redis_tls=settings.redis_tls,
    )


class RefusalLog:
    """Logs each distinct refusal once, at error level, however often it is retried.

    Call it with every failure of a retrying loop; it returns the refusal (or ``None``).
    :meth:`forget` after a success, so that a later refusal is logged again.
    """

    def __init__(self, settings: BackendSettings) -> None:
        self._settings = settings
        self._logged: set[str] = set()

    def __call__(self, error: BaseException) -> Refusal | None:
        """The refusal behind ``error`` (logged if it is new), or ``None``."""
        found = configured_refusal(error, self._settings)
        if found is not None and found.message not in self._logged:
            self._logged.add(found.message)
            log.error(found.message, backend=found.backend, refusal=found.reason, hint=NO_RETRY)
        return found

    def forget(self) -> None:
        """Forget what was logged (the backend accepted us since)."""
        self._logged.clear()
