"""amqps:// and rediss://: the daemon, the client, check and the operator commands over TLS.

The session's private RabbitMQ node, whose TLS listener requires a client certificate,
and one TLS-only redis-server (``--port 0``, ``--tls-auth-clients yes``, a password), both
with certificates this module makes (tests.harness.tls). Both also listen on
127.0.0.2, a loopback address their certificate does not name.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.errors import Unavailable
from registryd.probe import probe
from tests.harness import (
    AMQP_URL,
    PrivateRabbit,
    cli_env,
    served,
    start_daemon,
    unique_prefix,
    wait_for,
)
from tests.harness.services import REGISTRYD
from tests.harness.tls import UNLISTED_HOST, Pki, TlsRedis

pytestmark = [pytest.mark.integration, pytest.mark.rabbit_node]

#: Secrets that must never appear in a log or an error line.
AMQP_USER, AMQP_PASSWORD = "tls-daemon", "amqp-secret-5f2c"
REDIS_PASSWORD = "redis-secret-9d1e"


@pytest.fixture(scope="module")
def rabbit(private_rabbit: PrivateRabbit) -> Iterator[PrivateRabbit]:
    """The private node, with a user of this module's (all permissions, a password)."""

    async def add() -> None:
        await private_rabbit.ctl("add_user", AMQP_USER, AMQP_PASSWORD)
        await private_rabbit.ctl("set_permissions", "-p", "/", AMQP_USER, ".*", ".*", ".*")

    asyncio.run(add())
    try:
        yield private_rabbit
    finally:
        asyncio.run(private_rabbit.ctl("delete_user", AMQP_USER))


@pytest.fixture(scope="module")
def redis_tls(pki: Pki) -> Iterator[TlsRedis]:
    """A TLS-only redis-server that requires a client certificate and a password."""
    server = TlsRedis(pki, auth_clients="yes", password=REDIS_PASSWORD)
    try:
        asyncio.run(server.start())
        yield server
    finally:
        server.stop()


def _urls(rabbit: PrivateRabbit, redis: TlsRedis, host: str = "localhost") -> dict[str, str]:
    return {
        "REGISTRYD_AMQP_URL": rabbit.amqps_url(AMQP_USER, AMQP_PASSWORD, host=host),
        "REGISTRYD_REDIS_URL": redis.url(host),
    }


def _tls_env(pki: Pki, *, ca: Path | None = None, check: bool = True) -> dict[str, str]:
    env: dict[str, str] = {}
    for backend in ("AMQP", "REDIS"):
        env |= {
            f"REGISTRYD_{backend}_CA_FILE": str(ca or pki.ca),
            f"REGISTRYD_{backend}_CERT_FILE": str(pki.client_cert),
            f"REGISTRYD_{backend}_KEY_FILE": str(pki.client_key),
            f"REGISTRYD_{backend}_CHECK_HOSTNAME": "true" if check else "false",
        }
    return env


def _settings(prefix: str, env: dict[str, str]) -> Settings:
    return Settings.model_validate(
        {key.removeprefix("REGISTRYD_").lower(): value for key, value in env.items()}
        | {"prefix": prefix, "metrics_port": 0, "grace": 5.0}
    )


async def test_the_daemon_serves_over_tls_and_client_and_commands_reach_it(
    pki: Pki, rabbit: PrivateRabbit, redis_tls: TlsRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon on amqps:// and rediss://; client, command and RabbitMQ agree.

    The client (its TLS settings read from the environment, as the daemon reads them)
    pings, writes by RPC and by event; ``registryd masters`` lists the master; RabbitMQ
    lists every connection as TLS.
    """
    prefix = unique_prefix()
    env = _urls(rabbit, redis_tls) | _tls_env(pki)
    running = await start_daemon(_settings(prefix, env))
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        async with await RegistryClient.connect(prefix=prefix) as client:
            assert (await client.ping()).epoch
            workerid = await client.find_worker_id("tls-worker")
            worker = await client.get_worker(workerid)
            assert worker is not None
            assert worker.name == "tls-worker"
            await client.master_heartbeat(7, name="tls-master")

            async def listed() -> bool:
                return [m.id for m in await client.get_masters()] == [7]

            await wait_for(listed)
        masters = await _registryd("masters", "--json", env=cli_env(prefix, **env))
        assert masters.returncode == 0, masters.stderr
        assert [m["id"] for m in json.loads(masters.stdout)] == [7]
        connections = await rabbit.ctl(
            "list_connections", "user", "ssl", "--quiet", "--no-table-headers"
        )
        assert {tuple(line.split()) for line in connections.splitlines() if line} == {
            (AMQP_USER, "true")
        }
    finally:
        await running.stop()


async def _registryd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``registryd args...`` without blocking the loop (a daemon may serve in it)."""
    process = await asyncio.create_subprocess_exec(
        *REGISTRYD, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_a_wrong_ca_is_a_refusal_naming_the_backend_and_check_says_so(
    pki: Pki, rabbit: PrivateRabbit, redis_tls: TlsRedis
) -> None:
    """``registryd check`` names each backend, the failure and the CA file; no password."""
    env = cli_env(unique_prefix(), **_urls(rabbit, redis_tls), **_tls_env(pki, ca=pki.other_ca))
    result = await _registryd("check", env=env)
    assert result.returncode == 1
    out = result.stdout
    assert (
        f"rabbitmq (RabbitMQ at amqps://{AMQP_USER}@localhost:{rabbit.amqps_port}/%2F: "
        f"TLS certificate verify failed (self-signed certificate in certificate chain; "
        f"REGISTRYD_AMQP_CA_FILE={pki.other_ca}); retrying will not fix this" in out
    )
    assert (
        f"redis (Redis at rediss://localhost:{redis_tls.port}/0: TLS certificate verify failed "
        f"(self-signed certificate in certificate chain; REGISTRYD_REDIS_CA_FILE={pki.other_ca})"
        in out
    )
    assert AMQP_PASSWORD not in out + result.stderr
    assert REDIS_PASSWORD not in out + result.stderr


async def test_the_daemon_says_a_wrong_ca_once_and_never_logs_a_password(
    tmp_path: Path, pki: Pki, rabbit: PrivateRabbit, redis_tls: TlsRedis
) -> None:
    """``registryd serve`` with the wrong CA for Redis: one error, and no password logged.

    The error names Redis and the CA file, once, while the daemon keeps retrying.
    """
    prefix = unique_prefix()
    env = _urls(rabbit, redis_tls) | _tls_env(pki)
    env["REGISTRYD_REDIS_CA_FILE"] = str(pki.other_ca)
    env["REGISTRYD_METRICS_PORT"] = "0"
    with served(tmp_path, prefix, environ=cli_env(prefix, **env)) as serve:

        def retried_twice() -> bool:
            events = [r.get("event") for r in serve.records()]
            return events.count("redis unavailable; retrying") >= 2

        await wait_for(retried_twice, 30)
        await serve.stopped()
        records = serve.records()
    errors = [r for r in records if r.get("level", r.get("log_level")) == "error"]
    assert [(r["backend"], r["refusal"]) for r in errors] == [
        ("Redis", "TLS certificate verify failed")
    ]
    assert f"REGISTRYD_REDIS_CA_FILE={pki.other_ca}" in errors[0]["event"]
    assert AMQP_PASSWORD not in serve.log()
    assert REDIS_PASSWORD not in serve.log()


async def test_a_server_name_the_certificate_does_not_list_fails_unless_checking_is_off(
    pki: Pki, rabbit: PrivateRabbit, redis_tls: TlsRedis
) -> None:
    """By 127.0.0.2 (same servers, not in the certificate): a name mismatch for both.

    With hostname checking off (unsafe) both answer.
    """
    env = _urls(rabbit, redis_tls, host=UNLISTED_HOST)
    failed = dict(await probe(_settings(unique_prefix(), env | _tls_env(pki))))
    assert set(failed) == {"rabbitmq", "redis"}
    for why in failed.values():
        assert (
            "TLS server name check failed (IP address mismatch, certificate is not valid "
            "for '127.0.0.2'" in why
        )
    assert await probe(_settings(unique_prefix(), env | _tls_env(pki, check=False))) == []


async def test_the_client_library_refuses_a_server_it_cannot_verify(
    pki: Pki, rabbit: PrivateRabbit
) -> None:
    """The client with the wrong CA: Unavailable, and why (the certificate), no password."""
    url = rabbit.amqps_url(AMQP_USER, AMQP_PASSWORD)
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED") as raised:
        await RegistryClient.connect(
            url, unique_prefix(), timeout=5, tls=pki.client(ca=pki.other_ca)
        )
    assert AMQP_PASSWORD not in str(raised.value)


async def test_a_client_certificate_is_needed_only_where_redis_asks_for_one(
    pki: Pki, redis_tls: TlsRedis
) -> None:
    """Without a client certificate: ``--tls-auth-clients optional`` serves, ``yes`` not."""
    optional = TlsRedis(pki, auth_clients="optional")
    await optional.start()
    try:
        prefix = unique_prefix()
        ca_only = {"REGISTRYD_AMQP_URL": AMQP_URL, "REGISTRYD_REDIS_CA_FILE": str(pki.ca)}
        served_without = _settings(prefix, ca_only | {"REGISTRYD_REDIS_URL": optional.url()})
        assert await probe(served_without) == []
        refused = _settings(prefix, ca_only | {"REGISTRYD_REDIS_URL": redis_tls.url()})
        assert [name for name, _ in await probe(refused)] == ["redis"]
    finally:
        optional.stop()
