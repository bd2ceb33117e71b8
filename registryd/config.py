"""Settings: declared values only, from a TOML file and ``REGISTRYD_*`` variables.

The environment wins over the file. ``amqp.url`` may name a RabbitMQ cluster's nodes:
several URLs separated by commas (a TOML array works too), tried in turn. TOML keys
mirror the variables in sections (``amqp.url`` is ``REGISTRYD_AMQP_URL``;
``masters.lease`` is ``REGISTRYD_MASTER_LEASE``).
Building runtime objects from these values is the daemon's job, not this module's.

:func:`load_settings` reads the file and the environment itself, so that an error names
what the user wrote (``masters.lease = "abc" in x.toml``, ``REGISTRYD_MASTER_LEASE='abc'``,
``--prefix 'a b'``) rather than a field of this module. :func:`unknown_variables` names
the ``REGISTRYD_*`` variables that are no setting (a typo is otherwise silently ignored).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from registryd.broker import broker_urls
from registryd.errors import ConfigError
from registryd.logs import mask
from registryd.tls import TlsFiles, check_ca_file, check_client_pair, uses_tls

__all__ = [
    "ENV_PREFIX",
    "RedisTarget",
    "Settings",
    "env_variable",
    "load_settings",
    "redis_target",
    "toml_key",
    "unknown_variables",
]

#: Every variable of a setting starts with this.
ENV_PREFIX: Final = "REGISTRYD_"
#: Variables of that prefix that are not settings: the CLI's ``--config``, and the test
#: suite's own (``REGISTRYD_TEST_*``).
_NOT_SETTINGS: Final = frozenset({"REGISTRYD_CONFIG"})
_TEST_VARIABLES: Final = "REGISTRYD_TEST_"
#: TOML ``section.key`` of the settings whose name is not ``section_key``.
_RENAMED: Final = {"master_lease": "masters.lease"}
#: Settings given as JSON in the environment (a TOML table in the file).
_JSON_SETTINGS: Final = frozenset({"auth_masters"})
#: ``redis+sentinel://`` names sentinels and a service, ``redis+cluster://`` seed nodes of a
#: Redis Cluster; ``rediss+`` is either over TLS (:func:`redis_target`).
_REDIS_SCHEMES: Final = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
_URL_SCHEMES: Final = {"amqp_url": ("amqp", "amqps"), "redis_url": _REDIS_SCHEMES}
#: The TLS settings of each backend, and the scheme that uses them.
_TLS_SETTINGS: Final = ("ca_file", "cert_file", "key_file", "check_hostname")
_TLS_SCHEME: Final = {"amqp": "amqps", "redis": "rediss"}
_UNSAFE: Final = "unsafe: any certificate of the CA is then taken for the server's"

#: False while :func:`load_settings` builds settings from values it read itself.
_READ_ENVIRONMENT: ContextVar[bool] = ContextVar("registryd_read_environment", default=True)


class Settings(BaseSettings):
    """Every setting of the daemon and the operator commands, with its default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    prefix: str = Field("registry", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description="a RabbitMQ URL, or a cluster's node URLs separated by commas",
    )
    amqp_quorum_queues: bool = Field(
        default=False,
        description="RPC and dead-letter queues replicated (quorum) too: for a cluster",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    amqp_ca_file: FilePath | None = Field(None, description="CA of the broker's certificate")
    amqp_cert_file: FilePath | None = Field(None, description="client certificate (PEM)")
    amqp_key_file: FilePath | None = Field(None, description="client certificate's key (PEM)")
    amqp_check_hostname: bool = Field(default=True, description=_UNSAFE)
    redis_ca_file: FilePath | None = Field(None, description="CA of Redis's certificate")
    redis_cert_file: FilePath | None = Field(None, description="client certificate (PEM)")
    redis_key_file: FilePath | None = Field(None, description="client certificate's key (PEM)")
    redis_check_hostname: bool = Field(default=True, description=_UNSAFE)
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
    redis_wait_replicas: int = Field(
        0, ge=0, le=100, description="replicas a write must reach before its ack (0: off)"
    )
    redis_wait_timeout: float = Field(
        1.0, gt=0, le=4, description="seconds a write waits for those replicas"
    )
    redis_sentinel_username: str | None = Field(
        None, description="user the sentinels are asked as (redis+sentinel:// only)"
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="password of the sentinels themselves (redis+sentinel:// only)"
    )

    @field_validator("auth_masters")
    @classmethod
    def _positive_master_ids(
        cls, value: dict[str, list[int]] | None
    ) -> dict[str, list[int]] | None:
        if value is not None and any(m < 1 for ids in value.values() for m in ids):
            raise ValueError("master ids must be positive integers")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """``DEBUG``, ``Info`` and ``JSON`` are what people type: names are case-blind."""
        return value.lower() if isinstance(value, str) else value

    @field_validator("amqp_url", mode="before")
    @classmethod
    def _node_list(cls, value: object) -> object:
        """A TOML array of node URLs is the same list as the comma-separated text."""
        if isinstance(value, list) and all(isinstance(url, str) for url in value):
            return ",".join(value)
        return value

    @field_validator("amqp_url", "redis_url")
    @classmethod
    def _known_scheme(cls, value: str, info: ValidationInfo) -> str:
        schemes = _URL_SCHEMES[str(info.field_name)]
        urls = broker_urls(value) if info.field_name == "amqp_url" else (value,)
        if not urls:
            raise ValueError("must name at least one URL")
        for url in urls:
            scheme = urlsplit(url).scheme.lower()
            if scheme not in schemes:
                wanted = " or ".join(f"{s}://" for s in schemes)
                got = f"{scheme}://" if scheme else "no scheme"
                raise ValueError(f"must be a URL starting {wanted}, not {got}")
        if info.field_name == "redis_url":
            redis_target(value)
        return value

    @field_validator(*(f"{b}_{name}" for b in _TLS_SCHEME for name in _TLS_SETTINGS))
    @classmethod
    def _over_tls_only(cls, value: object, info: ValidationInfo) -> object:
        """A TLS setting for a plain URL is a mistake (the files would be ignored)."""
        if value is None or value is True:  # unset (defaults are validated too)
            return value
        backend = str(info.field_name).split("_", 1)[0]
        url = info.data.get(f"{backend}_url")
        urls = () if url is None else broker_urls(url) if backend == "amqp" else (url,)
        if urls and not any(uses_tls(u) for u in urls):
            url_setting = env_variable(f"{backend}_url")
            raise ValueError(f"applies to {_TLS_SCHEME[backend]}:// URLs only ({url_setting})")
        if str(info.field_name).endswith("key_file") and not info.data.get(f"{backend}_cert_file"):
            raise ValueError(f"needs {env_variable(f'{backend}_cert_file')} too")
        if str(info.field_name).endswith("ca_file") and isinstance(value, Path):
            check_ca_file(value)
        return value

    @field_validator("amqp_key_file", "redis_key_file")
    @classmethod
    def _loadable_pair(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """The client certificate loads with its key (checked once both are read)."""
        cert = info.data.get(str(info.field_name).replace("key_file", "cert_file"))
        if cert is not None:
            check_client_pair(cert, value)
        return value

    @property
    def amqp_tls(self) -> TlsFiles:
        """The broker connection's TLS settings (used with an ``amqps://`` URL)."""
        return TlsFiles(
            self.amqp_ca_file, self.amqp_cert_file, self.amqp_key_file, self.amqp_check_hostname
        )

    @property
    def redis_tls(self) -> TlsFiles:
        """The Redis connection's TLS settings (used with a ``rediss://`` URL)."""
        return TlsFiles(
            self.redis_ca_file, self.redis_cert_file, self.redis_key_file, self.redis_check_hostname
        )

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """The RabbitMQ nodes to try, in order (one for a single broker)."""
        return broker_urls(self.amqp_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then what the caller passed (the TOML file's values).

        :func:`load_settings` reads the environment itself and passes it in.
        """
        if not _READ_ENVIRONMENT.get():
            return (init_settings,)
        return env_settings, init_settings


@dataclass(frozen=True)
class RedisTarget:
    """What ``redis_url`` names: one server, a Sentinel-watched service, or a Cluster.

    ``redis+sentinel://[user:password@]host:port,host:port/service[/db]`` names the
    sentinels to ask and the service (``sentinel monitor <service> ...``) whose master
    takes the writes; the password is the data nodes' (the sentinels' own, if they have
    one, is ``redis_sentinel_password``).
    ``redis+cluster://[user:password@]host:port,host:port/`` names seed nodes of a Redis
    Cluster (database 0 only: a cluster has no other). ``rediss+`` is either over TLS.
    """

    kind: Literal["standalone", "sentinel", "cluster"]
    #: The URL as given (a standalone server's, for redis-py's ``from_url``).
    url: str
    #: ``(host, port)`` of each sentinel or seed node; empty for a standalone server.
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def _nodes(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = port, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:  # noqa: PLR2004
            raise ValueError(f"{item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return tuple(nodes)


def redis_target(url: str) -> RedisTarget:
    """What ``url`` names (:class:`RedisTarget`); ``ValueError`` saying what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if "+" not in scheme:
        return RedisTarget("standalone", url)
    base, _, kind = scheme.partition("+")
    path = [p for p in parts.path.split("/") if p]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if kind == "sentinel":
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):  # noqa: PLR2004
            raise ValueError("must name the service: redis+sentinel://host:port,.../service[/db]")
        db = int(path[1]) if len(path) == 2 else 0  # noqa: PLR2004
        nodes = _nodes(parts.netloc, 26379)
        return RedisTarget("sentinel", url, nodes, path[0], db, user, password, base == "rediss")
    if path and path != ["0"]:
        raise ValueError("a Redis Cluster has database 0 only: redis+cluster://host:port,.../")
    nodes = _nodes(parts.netloc, 6379)
    return RedisTarget("cluster", url, nodes, "", 0, user, password, base == "rediss")


def toml_key(setting: str) -> str:
    """The TOML key of a setting: ``amqp_url`` is ``amqp.url``, ``grace`` is ``grace``."""
    return _RENAMED.get(setting) or setting.replace("_", ".", 1)


def env_variable(setting: str) -> str:
    """The variable of a setting: ``amqp_url`` is ``REGISTRYD_AMQP_URL``."""
    return ENV_PREFIX + setting.upper()


_BY_TOML_KEY: Final = {toml_key(name): name for name in Settings.model_fields}
_BY_VARIABLE: Final = {env_variable(name): name for name in Settings.model_fields}


@dataclass(frozen=True)
class Given:
    """A value as the user gave it, and where: for error messages."""

    value: object
    #: ``REGISTRYD_MASTER_LEASE='abc'``, ``masters.lease = "abc" in x.toml``, ``--prefix 'x'``.
    said: str


def _shown(setting: str, text: str) -> str:
    """The value as it may be shown: a URL's password replaced by ``***``."""
    return mask(text) if setting in _URL_SCHEMES else text


def _flatten(data: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """``{"amqp": {"url": x}}`` as ``{"amqp.url": x}``; ``auth.masters`` stays a table."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{path}{key}"
        if isinstance(value, Mapping) and dotted not in _BY_TOML_KEY:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _unknown_key(key: str, config: Path) -> str:
    close = difflib.get_close_matches(key, _BY_TOML_KEY, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{key} in {config} is not a setting{hint}"


def _read_file(config: Path) -> dict[str, Given]:
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {config}: {exc}") from None
    flat = _flatten(data)
    unknown = [_unknown_key(key, config) for key in flat if key not in _BY_TOML_KEY]
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown))
    return {
        _BY_TOML_KEY[key]: Given(
            value,
            f"{key} = {_shown(_BY_TOML_KEY[key], json.dumps(value, default=str))} in {config}",
        )
        for key, value in flat.items()
    }


def _from_variable(setting: str, name: str, text: str) -> Given:
    said = f"{name}={_shown(setting, text)!r}"
    if setting not in _JSON_SETTINGS:
        return Given(text, said)
    try:
        return Given(json.loads(text), said)
    except ValueError as exc:
        raise ConfigError(
            f"invalid configuration: {said} is not valid JSON ({exc}); "
            'expected an object like {"amqp-user": [10, 11]}'
        ) from None


def _read_environment(environ: Mapping[str, str]) -> dict[str, Given]:
    """The settings among the variables (names are case-blind, as pydantic-settings has it)."""
    given: dict[str, Given] = {}
    for name, text in environ.items():
        setting = _BY_VARIABLE.get(name.upper())
        if setting is not None:
            given[setting] = _from_variable(setting, name, text)
    return given


_PLAIN: Final = {
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be a string",
    "string_pattern_mismatch": "must be 1 to 100 of the characters A-Z a-z 0-9 _ . -",
    "dict_type": "must be a table of AMQP user names to lists of master ids",
    "list_type": "must be a list",
    "path_not_file": "must be an existing file",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
}


def _phrase(item: Mapping[str, Any]) -> str:
    """Pydantic's verdict in the user's words (``must be a number``)."""
    kind = str(item["type"])
    if kind in _PLAIN:
        return _PLAIN[kind]
    message = str(item["msg"])
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    return re.sub(r"^Input should", "must", message)


def describe_errors(error: ValidationError, said: Mapping[str, str]) -> str:
    """One line: each bad value as the user gave it (``said``), then what it must be."""
    parts = []
    for item in error.errors(include_url=False):
        setting, *inner = (str(part) for part in item["loc"])
        where = said.get(setting, setting)
        within = f" (at {'.'.join(inner)})" if inner else ""
        parts.append(f"{where}{within}: {_phrase(item)}")
    return "; ".join(parts)


def load_settings(
    config: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read the TOML file (if any), under the environment, under ``overrides``.

    ``overrides`` are command-line options (``{"prefix": "x"}`` is ``--prefix x``).
    Raises :class:`ConfigError`, one line naming each bad value as the user wrote it.
    """
    given = _read_file(config) if config is not None else {}
    given |= _read_environment(os.environ if environ is None else environ)
    for setting, value in (overrides or {}).items():
        option = "--" + setting.replace("_", "-")
        given[setting] = Given(value, f"{option} {_shown(setting, repr(value))}")
    token = _READ_ENVIRONMENT.set(False)
    try:
        return Settings.model_validate({setting: g.value for setting, g in given.items()})
    except ValidationError as exc:
        said = {setting: g.said for setting, g in given.items()}
        raise ConfigError(f"invalid configuration: {describe_errors(exc, said)}") from None
    finally:
        _READ_ENVIRONMENT.reset(token)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``REGISTRYD_*`` variable that is no setting, with a close match."""
    environ = os.environ if environ is None else environ
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(_TEST_VARIABLES):
            continue
        if upper in _BY_VARIABLE or upper in _NOT_SETTINGS:
            continue
        suffixes = [v.removeprefix(ENV_PREFIX) for v in _BY_VARIABLE]
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), suffixes, 1, 0.75)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        warnings.append(f"{name} is not a registryd setting and is ignored{hint}")
    return warnings
