"""The demo: its own ids, a refusal of a registry in use, and nothing left behind."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelNotFoundEntity
from redis.asyncio import Redis

from registryd.protocol import Names
from registryd.store import Keys, RedisStore
from tests.harness import RunningDaemon, Wire, cli_env
from tests.integration.test_operator_cli import registryd

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: The console script of the environment the tests run in (what `make demo` calls).
CONSOLE_SCRIPT = Path(sys.executable).with_name("registryd")


async def test_the_demo_refuses_a_registry_with_other_workers(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """A worker that is not the demo's: exit 4, the reason and --force named, nothing made."""
    await rpc.ok("findWorkerId", {"name": "linux-1"})
    run = await registryd(prefix, "demo")
    assert 4 == run.code
    assert (
        f"registryd: prefix '{prefix}' holds a registry in use: 1 workers ('linux-1'); "
        "the demo would add its own masters and workers to it."
    ) in run.err
    assert "or pass --force" in run.err
    assert ["linux-1"] == [w["name"] for w in await rpc.ok("getWorkers")]
    assert [] == await rpc.ok("getMasters")


async def test_the_demo_refuses_a_registry_with_other_masters(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """A live master 1 (a real one's id) makes the demo refuse: it never acts as it."""
    await rpc.ok("masterHeartbeat", {"masterid": 1, "name": "ci-1:/srv"})
    run = await registryd(prefix, "demo")
    assert 4 == run.code
    assert "holds a registry in use: 1 masters (1)" in run.err
    assert [1] == [m["id"] for m in await rpc.ok("getMasters")]


async def test_the_forced_demo_leaves_other_data_alone(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """demo --force runs beside a real worker and master and changes neither."""
    workerid = await rpc.ok("findWorkerId", {"name": "linux-1"})
    await rpc.ok("masterHeartbeat", {"masterid": 1, "name": "ci-1:/srv"})
    await rpc.ok("workerConfigured", {"workerid": workerid, "masterid": 1, "builderids": [1, 2]})
    await rpc.ok("workerConnected", {"workerid": workerid, "masterid": 1, "workerinfo": {}})
    before = await rpc.worker(workerid)
    run = await registryd(prefix, "demo", "--force")
    assert 0 == run.code, run.err
    assert before == await rpc.worker(workerid)
    masters = {m["id"]: m["active"] for m in await rpc.ok("getMasters")}
    assert {1: True, 9001: False, 9002: False} == masters


async def test_make_demo_runs_the_demo_and_leaves_nothing_behind(
    prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """scripts/demo.sh: a progress line per step, the demo, then no key, queue or exchange."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "scripts" / "demo.sh"),
        env=cli_env(prefix, REGISTRYD=str(CONSOLE_SCRIPT), REGISTRYD_LOG_FORMAT="console"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    elapsed = time.monotonic() - started
    assert 0 == process.returncode, err.decode()
    steps = re.findall(r"^\[demo +[\d.]+s\] (\d)/4 ", err.decode(), re.MULTILINE)
    assert ["1", "2", "3", "4"] == steps
    assert "demo done: " in out.decode()
    assert elapsed < 20, elapsed  # the registry moves within seconds (install aside)
    assert [] == [key async for key in redis.scan_iter(match=Keys(prefix).pattern())]
    channel = await amqp.channel()
    with pytest.raises(ChannelNotFoundEntity):
        await channel.declare_queue(Names(prefix).rpc, passive=True)


async def test_the_clean_up_refuses_a_prefix_holding_other_data(
    store: RedisStore, redis: Redis, prefix: str
) -> None:
    """purge-demo on a registry with a real worker: exit 4, and every key is still there."""
    await store.find_worker_id("linux-1")
    keys = [key async for key in redis.scan_iter(match=Keys(prefix).pattern())]
    run = await registryd(prefix, "purge-demo")
    assert 4 == run.code
    assert "holds 1 workers ('linux-1'), not only demo data: nothing deleted" in run.err
    assert sorted(keys) == sorted(
        [key async for key in redis.scan_iter(match=Keys(prefix).pattern())]
    )


async def test_the_clean_up_refuses_a_prefix_a_daemon_serves(
    daemon: RunningDaemon, prefix: str
) -> None:
    """purge-demo while a daemon serves the prefix: exit 4, stop it first."""
    run = await registryd(prefix, "purge-demo")
    assert 4 == run.code
    assert f"a daemon still serves prefix '{prefix}': stop it first" in run.err


def test_make_demo_installs_the_runtime_only() -> None:
    """`make demo` installs registryd without the dev extra (the dev tools are for tests)."""
    dry = subprocess.run(
        ["make", "-n", "-B", "demo"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line]
    assert installs, dry.stdout
    assert [] == [line for line in installs if "[dev]" in line or "--upgrade" in line]
    assert all(" -e . " in f"{line} " for line in installs), installs


def test_the_licence_is_an_spdx_expression() -> None:
    """license = "MIT" with setuptools >= 77: no deprecation banner in an install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "MIT" == project["project"]["license"]
    assert ["setuptools>=77"] == project["build-system"]["requires"]
