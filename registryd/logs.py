"""structlog set-up: JSON lines or a console, with passwords in URLs masked everywhere."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "mask", "mask_secrets"]

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?P<tail>@)")


def mask(text: str) -> str:
    """The text with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)


def _mask(value: Any) -> Any:  # noqa: ANN401 - log values are anything
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def mask_secrets(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace the password of every URL in every value by ``***``."""
    return {key: _mask(value) for key, value in event_dict.items()}


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """Send structlog and stdlib logging (aio-pika, redis) to stderr in one format."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # noqa: FBT003 - stdlib API; warnings become log lines
    # aiormq logs every frame-level hiccup at INFO; its failures still come through.
    logging.getLogger("aiormq").setLevel(max(logging.WARNING, root.level))
