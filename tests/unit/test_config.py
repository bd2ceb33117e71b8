"""Settings: TOML file under REGISTRYD_* variables, clear errors, secrets kept out of logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog

from registryd.config import Settings, load_settings, redis_target
from registryd.errors import ConfigError
from registryd.logs import mask, mask_secrets


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REGISTRYD_* variable of the machine leaks into these tests."""
    for key in list(os.environ):
        if key.startswith("REGISTRYD_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_protocols() -> None:
    """With no file and no variables, every default is the one PROTOCOL.md section 8 names."""
    s = load_settings()
    assert (
        "registry",
        "amqp://guest:guest@127.0.0.1:5672/",
        "redis://127.0.0.1:6379/0",
        60.0,
        "json",
        9822,
        "127.0.0.1",
        10.0,
        None,
    ) == (
        s.prefix,
        s.amqp_url,
        s.redis_url,
        s.master_lease,
        s.log_format,
        s.metrics_port,
        s.metrics_host,
        s.grace,
        s.auth_masters,
    )


def test_toml_sections_mirror_the_variables(tmp_path: Path) -> None:
    """amqp.url, redis.url, masters.lease, log.format, metrics.port and auth.masters are read."""
    config = tmp_path / "registryd.toml"
    config.write_text(
        'prefix = "ci"\n[amqp]\nurl = "amqp://a:b@h/"\n[redis]\nurl = "redis://r/1"\n'
        '[masters]\nlease = 30\n[log]\nformat = "console"\n[metrics]\nport = 0\n'
        '[auth]\nmasters = { "master-a" = [10, 11] }\n',
        encoding="utf-8",
    )
    s = load_settings(config)
    assert ("ci", "amqp://a:b@h/", "redis://r/1", 30.0, "console", 0, {"master-a": [10, 11]}) == (
        s.prefix,
        s.amqp_url,
        s.redis_url,
        s.master_lease,
        s.log_format,
        s.metrics_port,
        s.auth_masters,
    )


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REGISTRYD_PREFIX and REGISTRYD_MASTER_LEASE override the file's prefix and masters.lease."""
    config = tmp_path / "registryd.toml"
    config.write_text('prefix = "file"\n[masters]\nlease = 30\n', encoding="utf-8")
    monkeypatch.setenv("REGISTRYD_PREFIX", "env")
    monkeypatch.setenv("REGISTRYD_MASTER_LEASE", "5")
    monkeypatch.setenv("REGISTRYD_AUTH_MASTERS", '{"u": [1]}')
    s = load_settings(config)
    assert ("env", 5.0, {"u": [1]}) == (s.prefix, s.master_lease, s.auth_masters)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("bogus = 1\n", "bogus"),
        ('[log]\nformat = "xml"\n', "log.format"),
        ('prefix = "a b"\n', "prefix"),
        ("[metrics]\nport = 70000\n", "metrics.port"),
        ("[masters]\nlease = 0\n", "masters.lease"),
        ('[auth]\nmasters = { "u" = [0] }\n', "auth.masters"),
        ("not toml at all [", "cannot read"),
    ],
)
def test_bad_configuration_is_a_config_error(tmp_path: Path, toml: str, needle: str) -> None:
    """A bad file names the offending setting by its TOML key in a ConfigError."""
    config = tmp_path / "registryd.toml"
    config.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        load_settings(config)


def test_settings_are_frozen() -> None:
    """Settings hold declared values only and cannot be changed after load."""
    s = Settings()
    with pytest.raises(ValueError, match="frozen"):
        s.prefix = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://guest:guest@h:5672/", "amqp://guest:***@h:5672/"),
        ("redis://:pw@r:6379/0", "redis://:***@r:6379/0"),
        ("failed: amqps://u:p%40ss@h/v (refused)", "failed: amqps://u:***@h/v (refused)"),
        ("redis://r:6379/0", "redis://r:6379/0"),
        ("no url here", "no url here"),
    ],
)
def test_passwords_in_urls_are_masked(text: str, masked: str) -> None:
    """Every URL password in a text becomes ***, and nothing else changes."""
    assert masked == mask(text)


def test_log_processor_masks_nested_values() -> None:
    """The structlog processor masks URLs in nested values and exception texts."""
    with structlog.testing.capture_logs(processors=[mask_secrets]) as logs:
        structlog.get_logger().warning("x", error="amqp://u:secret@h/", urls=["redis://:s@r/"])
    assert [
        {
            "error": "amqp://u:***@h/",
            "urls": ["redis://:***@r/"],
            "event": "x",
            "log_level": "warning",
        }
    ] == logs


def test_example_configs_load() -> None:
    """The shipped example configurations are valid and mean what their comments say."""
    root = Path(__file__).resolve().parents[2] / "config"
    full = load_settings(root / "registryd.toml")
    trial = load_settings(root / "test.toml")
    assert Settings() == full
    assert ("registry-try", "console", 15.0, 9823) == (
        trial.prefix,
        trial.log_format,
        trial.master_lease,
        trial.metrics_port,
    )


def test_redis_urls_name_one_server_a_sentinel_service_or_a_cluster() -> None:
    """redis_target reads the sentinels, service, db and password; a cluster's seed nodes."""
    sentinel = redis_target("rediss+sentinel://:p%40ss@s1:26379,[::1]:26380,s3/ci/2")
    assert ("sentinel", (("s1", 26379), ("::1", 26380), ("s3", 26379)), "ci", 2) == (
        sentinel.kind,
        sentinel.nodes,
        sentinel.service,
        sentinel.db,
    )
    assert (None, "p@ss", True) == (sentinel.username, sentinel.password, sentinel.tls)
    cluster = redis_target("redis+cluster://u:p@n1:7000,n2/")
    assert ("cluster", (("n1", 7000), ("n2", 6379)), "u", False) == (
        cluster.kind,
        cluster.nodes,
        cluster.username,
        cluster.tls,
    )
    assert "standalone" == redis_target("redis://h:6379/1").kind
