"""The one error tree of registryd.

Every error a client can observe carries a stable protocol ``code`` (PROTOCOL.md
sections 4 and 5) and says whether a retry may succeed.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "QUOTE_LIMIT",
    "BadRequest",
    "ConfigError",
    "Crashed",
    "EpochMissing",
    "Forbidden",
    "Internal",
    "InvalidParams",
    "NotFound",
    "RegistryError",
    "ResyncRequired",
    "RpcTimeout",
    "TooLarge",
    "Unavailable",
    "UnknownMethod",
    "UnknownType",
    "error_for_code",
    "quote",
]

#: How much of a value a client sent an error message quotes (a message goes into a dead
#: letter's header, which must fit one AMQP frame, and into the log).
QUOTE_LIMIT = 100


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was.

    ``repr`` also escapes what must not reach a reply or a log raw: control characters
    and lone surrogates.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"


class RegistryError(Exception):
    """Base of every error registryd reports; ``code`` is the protocol's error code."""

    code: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> dict[str, object]:
        """The ``error`` object of an RPC reply."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class BadRequest(RegistryError):
    """The message is not a JSON object of the expected envelope."""

    code = "bad_request"
    retryable = False


class UnknownMethod(RegistryError):
    """An RPC names a method the protocol does not have."""

    code = "unknown_method"
    retryable = False


class UnknownType(RegistryError):
    """An event names a ``type`` the protocol does not have."""

    code = "unknown_type"
    retryable = False


class InvalidParams(RegistryError):
    """A field is missing, ill-typed, out of range or not allowed."""

    code = "invalid_params"
    retryable = False


class NotFound(RegistryError):
    """A write names a worker id that does not exist."""

    code = "not_found"
    retryable = False


class Forbidden(RegistryError):
    """The AMQP user may not act for the master the message names."""

    code = "forbidden"
    retryable = False


class ResyncRequired(RegistryError):
    """``getChanges`` was asked for history older than what is retained."""

    code = "resync_required"
    retryable = False


class TooLarge(RegistryError):
    """An unpaged reply would exceed the daemon's reply limit; page it with ``limit``."""

    code = "too_large"
    retryable = False


class Unavailable(RegistryError):
    """A backend (Redis, RabbitMQ) is down or did not answer in time."""

    code = "unavailable"
    retryable = True


class RpcTimeout(Unavailable):
    """The client got no reply (or no broker confirm) within its timeout."""


class Internal(RegistryError):
    """An unexpected failure inside registryd."""

    code = "internal"
    retryable = True


class EpochMissing(Internal):
    """The registry lost its epoch (Redis came back empty); a new one must be made.

    The service makes a new epoch and retries once, so a client never sees it.
    """


class Crashed(Internal):
    """A task of the daemon died of an unexpected exception (a bug).

    It is logged with its traceback; the daemon restarts its session after a backoff
    and keeps serving.
    """


class ConfigError(Exception):
    """The configuration cannot be used; the process exits with a clear message."""


_BY_CODE: dict[str, type[RegistryError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        UnknownMethod,
        UnknownType,
        InvalidParams,
        NotFound,
        Forbidden,
        ResyncRequired,
        TooLarge,
        Unavailable,
        Internal,
    )
}


def error_for_code(code: str, message: str) -> RegistryError:
    """Rebuild the typed error for a protocol code (unknown codes become ``Internal``)."""
    return _BY_CODE.get(code, Internal)(message)
