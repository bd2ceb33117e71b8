"""The private RabbitMQ node of the harness starts, serves, is managed, and stops whole."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import aio_pika
import pytest

from tests.harness import PrivateRabbit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.rabbit_node]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_private_node_serves_is_managed_and_stops_with_its_processes() -> None:
    """AMQP and rabbitmqctl reach it; stopped, no process of its group or file is left."""
    node = PrivateRabbit()
    async with node:
        assert node.process is not None
        pid = node.process.pid
        connection = await aio_pika.connect(node.amqp_url())
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("private-probe")
            assert queue.name == "private-probe"
        assert "private-probe" in await node.ctl("list_queues", "name")
        await node.ctl("add_user", "probe-user", "probe-secret")
        assert "probe-user" in await node.ctl("list_users")
        base = node.dir
        assert base is not None
    assert not _alive(pid)
    # Nothing of its process group is left (the VM, its port programs).
    await wait_for(lambda: not _pgroup_members(pid), 10)
    assert not base.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", node.amqp_port), timeout=2).close()


def _pgroup_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid:
                members.append(int(entry.name))
        except ProcessLookupError:
            continue
    return members
