"""Fixtures of the integration tests that cost seconds to make: made once per session."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import PrivateRabbit, PrivateRedisCluster, PrivateSentinelSet, ServerTls
from tests.harness.tls import UNLISTED_HOST, Pki, make_pki


@pytest.fixture(scope="session")
def pki() -> Iterator[Pki]:
    """A CA, server and client certificates, and an unrelated CA (readable by rabbitmq)."""
    # Not tmp_path: pytest's base dir is 0700 root, and RabbitMQ reads these as rabbitmq.
    directory = Path(tempfile.mkdtemp(prefix="registryd-pki-"))
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def private_rabbit(pki: Pki) -> Iterator[PrivateRabbit]:
    """A private RabbitMQ node for users and TLS (the shared broker is not reconfigured).

    A plain listener, and a TLS one (also on 127.0.0.2, which the server certificate does
    not name) that requires a client certificate of :func:`pki`'s CA. Tests add their own
    users; ``guest`` is its administrator.
    """
    tls = ServerTls(
        pki.ca, pki.server_cert, pki.server_key, fail_if_no_peer_cert=True, also_on=(UNLISTED_HOST,)
    )
    node = PrivateRabbit(tls=tls)
    try:
        asyncio.run(node.start())
        yield node
    finally:
        asyncio.run(node.stop())


@pytest.fixture
async def sentinel_set() -> AsyncIterator[PrivateSentinelSet]:
    """A master, one replica, three sentinels (one set per test: tests kill its master)."""
    servers = PrivateSentinelSet()
    try:
        await servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
async def cluster() -> AsyncIterator[PrivateRedisCluster]:
    """A Redis Cluster of three masters with one replica each (one per test)."""
    servers = PrivateRedisCluster(masters=3, replicas=1)
    try:
        await servers.start()
        yield servers
    finally:
        servers.stop()
