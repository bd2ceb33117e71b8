"""Operator commands fail fast and say why; dead letters need no daemon; refusals named."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from yarl import URL

from registryd.amqp.topology import declare
from registryd.config import Settings
from registryd.diagnose import refusal
from registryd.errors import Unavailable
from registryd.operator import connected
from registryd.protocol import ERROR_HEADER, Names
from tests.harness import AMQP_URL, REDIS_URL, start_daemon
from tests.integration.test_operator_cli import registryd

pytestmark = pytest.mark.integration

WRONG_PASSWORD = str(URL(AMQP_URL).with_password("not-the-password"))
NO_VHOST = str(URL(AMQP_URL).with_path("/no-such-vhost-of-registryd"))


async def test_a_stopped_daemon_is_noticed_within_a_second(
    settings: Settings, redis: object, amqp: object
) -> None:
    """The RPC queue is there but nobody consumes it: Unavailable in under 1 s, saying so."""
    running = await start_daemon(settings)
    await running.stop()
    async with asyncio.timeout(1):
        with pytest.raises(Unavailable) as caught:
            async with connected(settings):
                pass
    assert (
        f"the daemon on prefix {settings.prefix!r} is unavailable: no daemon consumes "
        f"{settings.prefix}.rpc (start it with `registryd serve`)"
    ) == caught.value.message


async def test_a_prefix_never_served_is_noticed_within_a_second(settings: Settings) -> None:
    """No RPC queue at all: Unavailable in under 1 s, naming the queue and --prefix."""
    async with asyncio.timeout(1):
        with pytest.raises(Unavailable, match=r"queue \S+\.rpc does not exist: .*--prefix"):
            async with connected(settings):
                pass


async def test_a_command_without_a_daemon_exits_3_at_once(prefix: str, amqp: object) -> None:
    """`registryd workers` with no daemon: exit 3, one line, stdout empty."""
    run = await registryd(prefix, "workers", "--json")
    assert (3, "") == (run.code, run.out)
    line = (
        f"registryd: the daemon on prefix '{prefix}' is unavailable: queue {prefix}.rpc "
        "does not exist: registryd has not run with this prefix on this RabbitMQ (start it "
        "with `registryd serve`, or pick the prefix with --prefix)"
    )
    assert [line] == run.err.splitlines()


async def _one_dead_letter(amqp: AbstractConnection, prefix: str) -> None:
    """The daemon's objects, declared as it does, and one refused event in the dead queue."""
    channel = await amqp.channel()
    topology = await declare(channel, Names(prefix))
    error = json.dumps({"code": "not_found", "message": "no worker 99"})
    await topology.dead_exchange.publish(
        aio_pika.Message(
            b'{"type": "worker.paused"}',
            message_id="dead-1",
            headers={ERROR_HEADER: error},
        ),
        routing_key="worker.paused",
    )
    await channel.close()


async def test_dead_letters_are_listed_without_a_daemon(
    prefix: str, amqp: AbstractConnection
) -> None:
    """dead-letters reads the dead queue: it works while no daemon runs (a crash loop)."""
    await _one_dead_letter(amqp, prefix)
    run = await registryd(prefix, "dead-letters", "--json")
    assert 0 == run.code, run.err
    [record] = run.json()
    assert ("dead-1", "worker.paused", "not_found") == (
        record["message_id"],
        record["routing_key"],
        record["error"]["code"],
    )


async def test_dead_letters_are_dropped_without_a_daemon(
    prefix: str, amqp: AbstractConnection
) -> None:
    """dead-letters --drop --yes needs no daemon either; the queue is empty afterwards."""
    await _one_dead_letter(amqp, prefix)
    run = await registryd(prefix, "dead-letters", "--drop", "--yes")
    channel = await amqp.channel()
    queue = await channel.declare_queue(Names(prefix).dead, passive=True)
    assert (0, 0) == (run.code, queue.declaration_result.message_count), run.err


@pytest.mark.parametrize(
    ("url", "reason"),
    [(WRONG_PASSWORD, "access refused"), (NO_VHOST, "vhost not found")],
)
async def test_real_broker_refusals_are_recognised(url: str, reason: str) -> None:
    """What aio-pika raises for a wrong password or a missing vhost is named a refusal."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever aio-pika raises
        await aio_pika.connect(url, timeout=5)
    found = refusal(caught.value, amqp_url=url)
    assert found is not None
    assert ("RabbitMQ", reason) == (found.backend, found.reason)


async def test_check_names_a_refused_login_and_says_retrying_will_not_help(prefix: str) -> None:
    """check with a wrong password: exit 1, RabbitMQ and ACCESS_REFUSED named, no password."""
    run = await registryd(prefix, "check", REGISTRYD_AMQP_URL=WRONG_PASSWORD)
    assert 1 == run.code
    assert run.out.startswith(
        "failed: rabbitmq (RabbitMQ at amqp://guest@127.0.0.1:5672/ refused the login of "
        "user 'guest' (ACCESS_REFUSED: wrong user name or password); retrying will not fix this"
    ), run.out
    assert "not-the-password" not in run.out + run.err


async def test_check_names_a_missing_vhost(prefix: str) -> None:
    """check with a vhost that does not exist: 'vhost not found', not aiormq's frame text."""
    run = await registryd(prefix, "check", REGISTRYD_AMQP_URL=NO_VHOST)
    assert 1 == run.code
    assert "refused to open vhost 'no-such-vhost-of-registryd' for user 'guest'" in run.out
    assert "vhost not found" in run.out
    assert "Connection.Close" not in run.out


async def test_a_command_names_a_refused_login(prefix: str) -> None:
    """An operator command refused its login: exit 3 and the refusal, once, on stderr."""
    run = await registryd(prefix, "masters", REGISTRYD_AMQP_URL=WRONG_PASSWORD)
    assert (3, "") == (run.code, run.out)
    [line] = run.err.splitlines()
    assert line.startswith("registryd: RabbitMQ at amqp://guest@127.0.0.1:5672/ refused the login")


async def test_check_takes_its_options_after_the_subcommand(prefix: str, tmp_path: Path) -> None:
    """`registryd check --config FILE` is accepted; the file's backends are checked."""
    config = tmp_path / "registryd.toml"
    config.write_text(
        f'[amqp]\nurl = "{AMQP_URL}"\n[redis]\nurl = "{REDIS_URL}"\n', encoding="utf-8"
    )
    run = await registryd(prefix, "check", "--config", str(config), "--prefix", prefix)
    assert (0, "ok: rabbitmq and redis answer\n") == (run.code, run.out), run.err


async def test_an_unknown_variable_is_warned_about_on_stderr(prefix: str) -> None:
    """A misspelt REGISTRYD_MASTERLEASE is named on stderr; the command goes on."""
    run = await registryd(prefix, "check", REGISTRYD_MASTERLEASE="5")
    assert 0 == run.code
    assert (
        "registryd: warning: REGISTRYD_MASTERLEASE is not a registryd setting and is ignored; "
        "did you mean REGISTRYD_MASTER_LEASE?\n"
    ) == run.err


async def test_a_bad_variable_is_exit_2_in_the_users_words(prefix: str) -> None:
    """REGISTRYD_MASTER_LEASE=abc: exit 2, the variable and its value named."""
    run = await registryd(prefix, "masters", REGISTRYD_MASTER_LEASE="abc")
    assert (2, "") == (run.code, run.out)
    assert "registryd: invalid configuration: REGISTRYD_MASTER_LEASE='abc': must be a number\n" == (
        run.err
    )
