"""Settings: declared values only, from a TOML file and ``REGISTRYD_*`` variables.

The environment wins over the file. TOML keys mirror the variables in sections
(``amqp.url`` is ``REGISTRYD_AMQP_URL``; ``masters.lease`` is ``REGISTRYD_MASTER_LEASE``).
Building runtime objects from these values is the daemon's job, not this module's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from registryd.errors import ConfigError
from registryd.models.validation import describe

__all__ = ["Settings", "load_settings"]

#: TOML ``section.key`` to the setting it fills, where the name is not ``section_key``.
_RENAMED = {"masters.lease": "master_lease"}


class Settings(BaseSettings):
    """Every setting of the daemon and the operator commands, with its default."""

    model_config = SettingsConfigDict(env_prefix="REGISTRYD_", extra="forbid", frozen=True)

    prefix: str = Field("registry", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    master_lease: float = Field(60.0, gt=0, description="seconds without heartbeat before expiry")
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_port: int = Field(9822, ge=0, le=65535, description="0 turns the HTTP endpoint off")
    metrics_host: str = "127.0.0.1"
    grace: float = Field(10.0, ge=0, description="seconds SIGTERM waits for in-flight work")
    auth_masters: dict[str, list[int]] | None = None
    changes_retain: int = Field(100_000, ge=100_000, description="change-log entries kept")
    events_dedupe_window: float = Field(600.0, ge=600, description="seconds a message_id is kept")
    events_batch: int = Field(256, ge=1, le=10_000, description="events applied per round trip")
    events_delivery_limit: int = Field(
        20, ge=1, description="redeliveries before the broker dead-letters"
    )
    rpc_concurrency: int = Field(64, ge=1, le=10_000, description="RPC requests served at once")
    rpc_timeout: float = Field(
        4.5, gt=0, le=5, description="seconds a request may take before 'unavailable'"
    )
    rpc_max_reply: int = Field(
        8 * 1024 * 1024, ge=64 * 1024, description="bytes an RPC reply may have ('too_large')"
    )

    @field_validator("auth_masters")
    @classmethod
    def _positive_master_ids(
        cls, value: dict[str, list[int]] | None
    ) -> dict[str, list[int]] | None:
        if value is not None and any(m < 1 for ids in value.values() for m in ids):
            raise ValueError("master ids must be positive integers")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then what the caller passed (the TOML file's values)."""
        return env_settings, init_settings


def _flatten(data: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{path}{key}"
        if isinstance(value, Mapping) and dotted != "auth.masters":
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[_RENAMED.get(dotted, dotted.replace(".", "_"))] = value
    return flat


def load_settings(config: Path | None = None) -> Settings:
    """Read the TOML file (if any) under the environment; :class:`ConfigError` on bad input."""
    file_values: dict[str, Any] = {}
    if config is not None:
        try:
            file_values = _flatten(tomllib.loads(config.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config}: {exc}") from None
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe(exc)}") from None
