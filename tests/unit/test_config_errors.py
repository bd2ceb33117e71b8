"""Configuration errors in the user's words, and refusals that retrying will not fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from aiormq.exceptions import ChannelAccessRefused, InvalidFrameError, ProbableAuthenticationError
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError

from registryd.config import load_settings, unknown_variables
from registryd.diagnose import RefusalLog, refusal
from registryd.errors import ConfigError, Unavailable

AMQP = "amqp://ci:secret@mq.example.org:5672/ci"
REDIS = "redis://reg:secret@r.example.org:6379/0"
_SETTINGS = load_settings(environ={"REGISTRYD_AMQP_URL": AMQP, "REGISTRYD_REDIS_URL": REDIS})


def _error(tmp_path: Path, toml: str | None = None, **environ: str) -> str:
    config = None
    if toml is not None:
        config = tmp_path / "registryd.toml"
        config.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=environ)
    return str(caught.value)


def test_an_unknown_toml_key_is_named_as_written(tmp_path: Path) -> None:
    """`[amqp] urll` names amqp.urll and the file, and suggests amqp.url."""
    message = _error(tmp_path, '[amqp]\nurll = "amqp://h/"\n')
    assert (
        f"invalid configuration: amqp.urll in {tmp_path / 'registryd.toml'} is not a setting "
        "(did you mean amqp.url?)"
    ) == message


def test_a_bad_toml_value_names_the_key_and_the_value(tmp_path: Path) -> None:
    """A value the file gives is shown as TOML, under its key, with what it must be."""
    message = _error(tmp_path, '[masters]\nlease = "abc"\n')
    assert f'masters.lease = "abc" in {tmp_path / "registryd.toml"}: must be a number' in message


def test_a_bad_variable_names_the_variable_and_the_value(tmp_path: Path) -> None:
    """REGISTRYD_MASTER_LEASE=abc names the variable and 'abc', not a field."""
    message = _error(tmp_path, REGISTRYD_MASTER_LEASE="abc")
    assert "invalid configuration: REGISTRYD_MASTER_LEASE='abc': must be a number" == message


def test_invalid_json_in_a_variable_says_so(tmp_path: Path) -> None:
    """REGISTRYD_AUTH_MASTERS that is not JSON is 'not valid JSON', with an example."""
    message = _error(tmp_path, REGISTRYD_AUTH_MASTERS="{master-a: [10]}")
    assert message.startswith(
        "invalid configuration: REGISTRYD_AUTH_MASTERS='{master-a: [10]}' is not valid JSON ("
    )
    assert 'expected an object like {"amqp-user": [10, 11]}' in message


def test_a_bad_entry_inside_a_variable_is_located(tmp_path: Path) -> None:
    """Valid JSON of the wrong shape names the variable and where inside it is wrong."""
    message = _error(tmp_path, REGISTRYD_AUTH_MASTERS='{"master-a": ["ten"]}')
    assert 'REGISTRYD_AUTH_MASTERS=\'{"master-a": ["ten"]}\' (at master-a.0)' in message
    assert message.endswith(": must be a whole number")


def test_every_bad_value_is_named_at_once(tmp_path: Path) -> None:
    """Two bad settings, from the file and a variable, are both named, in one line."""
    message = _error(tmp_path, '[log]\nformat = "xml"\n', REGISTRYD_METRICS_PORT="70000")
    assert 1 == len(message.splitlines())
    assert 'log.format = "xml" in' in message
    assert "must be 'json' or 'console'" in message
    assert "REGISTRYD_METRICS_PORT='70000': must be less than or equal to 65535" in message


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("REGISTRYD_LOG_LEVEL", "DEBUG", "debug"),
        ("REGISTRYD_LOG_LEVEL", "Warning", "warning"),
        ("REGISTRYD_LOG_FORMAT", "JSON", "json"),
    ],
)
def test_levels_and_formats_are_case_insensitive(variable: str, value: str, setting: str) -> None:
    """DEBUG, Warning and JSON are accepted as debug, warning and json."""
    settings = load_settings(environ={variable: value})
    assert setting == getattr(settings, variable.removeprefix("REGISTRYD_").lower())


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("REGISTRYD_AMQP_URL", "amqp://h/"),
        ("REGISTRYD_AMQP_URL", "amqps://u:p@h:5671/vhost"),
        ("REGISTRYD_REDIS_URL", "redis://h:6379/1"),
        ("REGISTRYD_REDIS_URL", "rediss://u:p@h/0"),
        ("REGISTRYD_REDIS_URL", "unix:///run/redis/redis.sock"),
        ("REGISTRYD_REDIS_URL", "redis+sentinel://s1:26379,s2:26379,s3/registryd/2"),
        ("REGISTRYD_REDIS_URL", "rediss+sentinel://:pw@s1:26379/registryd"),
        ("REGISTRYD_REDIS_URL", "redis+cluster://u:p@n1:7000,n2:7001/"),
    ],
)
def test_url_schemes_of_each_backend_are_accepted(variable: str, url: str) -> None:
    """amqp/amqps for RabbitMQ; redis/rediss/unix, sentinel and cluster forms for Redis."""
    settings = load_settings(environ={variable: url})
    assert url == getattr(settings, variable.removeprefix("REGISTRYD_").lower())


@pytest.mark.parametrize(
    ("variable", "url", "wanted"),
    [
        ("REGISTRYD_AMQP_URL", "http://guest:guest@h:15672/", "amqp:// or amqps://, not http://"),
        ("REGISTRYD_AMQP_URL", "redis://h/", "amqp:// or amqps://, not redis://"),
        ("REGISTRYD_REDIS_URL", "amqp://h/", "redis:// or rediss:// or unix:// or redis+sentinel"),
        ("REGISTRYD_REDIS_URL", "127.0.0.1:6379", "redis:// or rediss:// or unix://"),
    ],
)
def test_url_schemes_are_checked(tmp_path: Path, variable: str, url: str, wanted: str) -> None:
    """An http:// AMQP URL (or any other wrong scheme) is a configuration error."""
    assert f"must be a URL starting {wanted}" in _error(tmp_path, **{variable: url})


@pytest.mark.parametrize(
    ("url", "wanted"),
    [
        ("redis+sentinel://s1:26379,s2:26379/", "must name the service"),
        ("redis+sentinel://s1:26379/svc/x", "must name the service"),
        ("redis+sentinel://s1:port/svc", "'s1:port' is not host:port"),
        ("redis+cluster://n1:7000/3", "a Redis Cluster has database 0 only"),
        ("redis+cluster://n1:7000,:7001/", "':7001' is not host:port"),
    ],
)
def test_sentinel_and_cluster_urls_are_checked(tmp_path: Path, url: str, wanted: str) -> None:
    """A sentinel URL names a service (and a numeric db); a cluster URL has db 0 only."""
    assert wanted in _error(tmp_path, REGISTRYD_REDIS_URL=url)


def test_a_bad_url_is_shown_without_its_password(tmp_path: Path) -> None:
    """The URL given is quoted with its password masked."""
    message = _error(tmp_path, REGISTRYD_AMQP_URL="http://guest:s3cret@h/")
    assert "REGISTRYD_AMQP_URL='http://guest:***@h/'" in message
    assert "s3cret" not in message


def test_an_option_wins_and_is_named_as_the_option(tmp_path: Path) -> None:
    """--prefix wins over the variable and the file, and a bad one is named --prefix."""
    config = tmp_path / "registryd.toml"
    config.write_text('prefix = "file"\n', encoding="utf-8")
    env = {"REGISTRYD_PREFIX": "env"}
    assert "option" == load_settings(config, environ=env, overrides={"prefix": "option"}).prefix
    with pytest.raises(ConfigError, match=r"--prefix 'a b': must be 1 to 100 of"):
        load_settings(config, environ=env, overrides={"prefix": "a b"})


def test_an_unknown_variable_is_warned_about_with_the_close_match() -> None:
    """REGISTRYD_MASTERLEASE is named, ignored, and REGISTRYD_MASTER_LEASE suggested."""
    warning = (
        "REGISTRYD_MASTERLEASE is not a registryd setting and is ignored; "
        "did you mean REGISTRYD_MASTER_LEASE?"
    )
    assert [warning] == unknown_variables(
        {"REGISTRYD_MASTERLEASE": "5", "REGISTRYD_MASTER_LEASE": "5"}
    )


def test_an_unknown_variable_without_a_close_match_gets_no_suggestion() -> None:
    """A variable like no setting is still named, without a guess."""
    assert ["REGISTRYD_COLOUR is not a registryd setting and is ignored"] == unknown_variables(
        {"REGISTRYD_COLOUR": "blue", "HOME": "/root"}
    )


def test_the_config_and_test_variables_are_not_warned_about() -> None:
    """REGISTRYD_CONFIG (the --config option) and REGISTRYD_TEST_* (the tests') are known."""
    assert [] == unknown_variables(
        {"REGISTRYD_CONFIG": "x.toml", "REGISTRYD_TEST_REDIS_URL": "redis://h/", "PATH": "/bin"}
    )


# -- refusals --------------------------------------------------------------------------------


def test_a_refused_amqp_login_is_named_with_the_user_and_the_fix() -> None:
    """ACCESS_REFUSED at login: RabbitMQ, the user, no password, and no retry will fix it."""
    error = ProbableAuthenticationError("ACCESS_REFUSED - Login was refused using PLAIN.")
    found = refusal(error, amqp_url=AMQP)
    assert found is not None
    assert ("RabbitMQ", "access refused") == (found.backend, found.reason)
    assert (
        "RabbitMQ at amqp://ci@mq.example.org:5672/ci refused the login of user 'ci' "
        "(ACCESS_REFUSED: wrong user name or password); retrying will not fix this: "
        "correct REGISTRYD_AMQP_URL (amqp.url)"
    ) == found.message


def test_a_refused_vhost_is_named_as_such() -> None:
    """aiormq's 'got <Connection.Close>' in answer to Connection.Open is a vhost refusal."""
    error = InvalidFrameError(
        "Expected one of ['Connection.OpenOk'], got <Connection.Close object at 0x7f>"
    )
    found = refusal(error, amqp_url=AMQP)
    assert found is not None
    assert "vhost not found" == found.reason
    assert "refused to open vhost 'ci' for user 'ci'" in found.message
    assert "retrying will not fix this" in found.message
    assert "0x7f" not in found.message


def test_a_refused_permission_is_named_with_the_brokers_words() -> None:
    """A 403 on a channel (a missing permission) quotes RabbitMQ and points at the grants."""
    detail = "ACCESS_REFUSED - access to queue 'registry.dead' in vhost 'ci' refused"
    found = refusal(ChannelAccessRefused(403, detail), amqp_url=AMQP)
    assert found is not None
    assert detail in found.message
    assert "docs/protocol.md section 10" in found.message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RedisAuthenticationError("invalid username-password pair"), "access refused"),
        (RedisResponseError("DB index is out of range"), "no such database"),
    ],
)
def test_redis_refusals_are_named(error: Exception, reason: str) -> None:
    """A refused Redis login or a missing database names Redis and the setting to fix."""
    found = refusal(error, redis_url=REDIS)
    assert found is not None
    assert ("Redis", reason) == (found.backend, found.reason)
    assert "redis://reg@r.example.org:6379/0" in found.message
    assert "REGISTRYD_REDIS_URL (redis.url)" in found.message
    assert "secret" not in found.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "redis+sentinel://:secret@s1:26379,s2:26379/svc/0",
            "redis+sentinel://s1:26379,s2:26379/svc/0",
        ),
        ("redis+cluster://reg:secret@n1:1,n2:2/", "redis+cluster://reg@n1:1,n2:2/"),
    ],
)
def test_a_refusal_names_every_host_of_a_list(url: str, shown: str) -> None:
    """Sentinel and cluster URLs name several hosts: all are shown, never the password."""
    found = refusal(RedisAuthenticationError("invalid username-password pair"), redis_url=url)
    assert found is not None
    assert shown in found.message
    assert "secret" not in found.message


def test_sentinels_refusing_the_login_name_their_own_settings() -> None:
    """redis-py's Sentinel gives up with the sentinels' refusals in its text: named as such."""
    error = MasterNotFoundError(
        "No master found for 'svc' : Redis<...> - AuthenticationError('Authentication required.')"
    )
    found = refusal(Unavailable("redis unavailable"), redis_url="redis+sentinel://s1:1/svc")
    assert found is None
    wrapped = Unavailable("redis: no master")
    wrapped.__cause__ = error
    found = refusal(wrapped, redis_url="redis+sentinel://s1:1,s2:2/svc")
    assert found is not None
    assert ("Redis", "access refused") == (found.backend, found.reason)
    assert "s1:1,s2:2" in found.message
    assert "REGISTRYD_REDIS_SENTINEL_USERNAME and _PASSWORD" in found.message
    assert refusal(MasterNotFoundError("No master found for 'svc'")) is None  # may heal


def test_a_refusal_is_found_behind_registryds_own_errors() -> None:
    """An Unavailable raised from the broker's refusal is still recognised as one."""
    wrapped = Unavailable("session ended")
    wrapped.__cause__ = ProbableAuthenticationError("ACCESS_REFUSED")
    found = refusal(wrapped, amqp_url=AMQP)
    assert found is not None
    assert "access refused" == found.reason


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        RedisConnectionError("Error 111 connecting to 127.0.0.1:6379."),
        Unavailable("redis: down"),
    ],
)
def test_failures_that_may_heal_are_no_refusal(error: Exception) -> None:
    """A backend that is down or slow is worth retrying: no refusal."""
    assert refusal(error, amqp_url=AMQP, redis_url=REDIS) is None


def test_a_refusal_is_logged_once_however_often_it_is_retried() -> None:
    """The log names it once at error level (backend, reason, hint), then stays quiet."""
    refusals = RefusalLog(_SETTINGS)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            refusals(Unavailable("session ended"))
            assert refusals(ProbableAuthenticationError("ACCESS_REFUSED")) is not None
    assert 1 == len(logs)
    assert ("error", "RabbitMQ", "access refused", "retrying will not fix this") == (
        logs[0]["log_level"],
        logs[0]["backend"],
        logs[0]["refusal"],
        logs[0]["hint"],
    )
    assert logs[0]["event"].startswith("RabbitMQ at amqp://ci@mq.example.org:5672/ci refused")


def test_a_refusal_is_logged_again_after_a_success() -> None:
    """forget() after the backend accepted us: the next refusal is news and is logged."""
    refusals = RefusalLog(_SETTINGS)
    with structlog.testing.capture_logs() as logs:
        refusals(ProbableAuthenticationError("ACCESS_REFUSED"))
        refusals.forget()
        refusals(ProbableAuthenticationError("ACCESS_REFUSED"))
    assert 2 == len(logs)
