"""Private Redis topologies for the high-availability tests: a Sentinel set, a Cluster.

Every server is a :class:`~tests.harness.services.PrivateRedis` on free ports, its files in
a temp dir of its own, stopped by PID (:meth:`stop`, also when the test fails). The
commands are the ones an operator runs to rehearse a failover (README, "Running for high
availability"): ``redis-server --replicaof``, ``redis-server <file> --sentinel``,
``redis-cli --cluster create ... --cluster-yes``, ``CLUSTER SETSLOT``/``MIGRATE``,
``CLUSTER FAILOVER``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.harness.services import PrivateRedis, free_port, wait_for

__all__ = ["SENTINEL_SERVICE", "PrivateRedisCluster", "PrivateSentinelSet"]

#: The service name the private sentinels monitor.
SENTINEL_SERVICE = "registryd"
#: Offset of a cluster node's bus port from its client port (fixed by Redis).
_BUS_OFFSET = 10_000


async def _ask(server: PrivateRedis, *command: str | int) -> Any:
    """One command to one server, on a connection of its own."""
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def _holds(server: PrivateRedis, *command: str | int, check: Callable[[Any], object]) -> bool:
    """``check(reply)``; False while the server does not answer."""
    try:
        return bool(check(await _ask(server, *command)))
    except (RedisError, OSError):
        return False


def _cluster_port() -> int:
    """A free port whose bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port + _BUS_OFFSET > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + _BUS_OFFSET))
            except OSError:
                continue
        return port


class PrivateSentinelSet:
    """A master, its replicas and three sentinels watching them, on free ports."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        sentinel_password: str | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="registryd-sentinel-"))
        #: The sentinels' own password (``requirepass``; also among themselves), if any.
        self.sentinel_password = sentinel_password
        self.master = PrivateRedis(cwd=self.dir)
        self.replicas = [
            PrivateRedis(args=["--replicaof", "127.0.0.1", str(self.master.port)], cwd=self.dir)
            for _ in range(replicas)
        ]
        self.down_after_ms = down_after_ms
        self.sentinels = [self._sentinel() for _ in range(sentinels)]

    def _sentinel(self) -> PrivateRedis:
        port = free_port()
        config = self.dir / f"sentinel-{port}.conf"
        quorum = 2
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SENTINEL_SERVICE} 10000\n"
            f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n" + self._sentinel_auth(),
            encoding="utf-8",
        )
        command = ["redis-server", str(config), "--sentinel"]
        return PrivateRedis(port, command=command, cwd=self.dir, password=self.sentinel_password)

    def _sentinel_auth(self) -> str:
        """The config lines of the sentinels' password: asked of clients and of each other."""
        if self.sentinel_password is None:
            return ""
        password = self.sentinel_password
        return f"requirepass {password}\nsentinel sentinel-pass {password}\n"

    @property
    def servers(self) -> list[PrivateRedis]:
        """Every data node: the first master and the replicas."""
        return [self.master, *self.replicas]

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming the three sentinels and the service, database 0."""
        nodes = ",".join(s.address for s in self.sentinels)
        return f"redis+sentinel://{nodes}/{SENTINEL_SERVICE}/0"

    async def start(self) -> None:
        """Start the master, the replicas (in sync) and the sentinels (aware of each other)."""
        await self.master.start()
        for replica in self.replicas:
            await replica.start()
            linked = partial(
                _holds,
                replica,
                "INFO",
                "replication",
                check=lambda i: i.get("master_link_status") == "up",
            )
            await wait_for(linked, 20)
        for sentinel in self.sentinels:
            await sentinel.start()
        others = len(self.sentinels) - 1
        for sentinel in self.sentinels:
            peers = partial(
                _holds,
                sentinel,
                "SENTINEL",
                "SENTINELS",
                SENTINEL_SERVICE,
                check=lambda r: len(r) == others,
            )
            await wait_for(peers, 30)
            watched = partial(
                _holds,
                sentinel,
                "SENTINEL",
                "REPLICAS",
                SENTINEL_SERVICE,
                check=lambda r: len(r) == len(self.replicas),
            )
            await wait_for(watched, 30)

    async def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        host_port = await _ask(
            self.sentinels[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE
        )
        return int(host_port[1])

    def server_on(self, port: int) -> PrivateRedis:
        """The data node listening on ``port``."""
        return next(s for s in self.servers if s.port == port)

    async def kill_master(self) -> int:
        """Kill the current master (SIGKILL, by PID); its port."""
        port = await self.master_port()
        self.server_on(port).kill()
        return port

    async def failed_over(self, old_port: int, timeout: float = 30) -> int:
        """Wait until every sentinel names a new master and it answers as one; its port."""

        async def moved(sentinel: PrivateRedis) -> bool:
            return await _holds(
                sentinel,
                "SENTINEL",
                "GET-MASTER-ADDR-BY-NAME",
                SENTINEL_SERVICE,
                check=lambda r: int(r[1]) != old_port,
            )

        for sentinel in self.sentinels:
            await wait_for(partial(moved, sentinel), timeout)
        port = await self.master_port()
        await wait_for(
            lambda: _holds(self.server_on(port), "ROLE", check=lambda r: r[0] == "master"), timeout
        )
        return port

    async def rejoin(self, port: int, master_port: int) -> None:
        """Start the server of ``port`` again, empty, as a replica of the new master; in sync.

        What an operator does with a master that died: it comes back as a replica
        (``redis-server --replicaof``), so the new master has a replica to WAIT for.
        """
        server = self.server_on(port)
        server.args = ["--replicaof", "127.0.0.1", str(master_port)]
        await server.start()
        linked = partial(
            _holds,
            server,
            "INFO",
            "replication",
            check=lambda i: i.get("master_link_status") == "up",
        )
        await wait_for(linked, 30)

    def stop(self) -> None:
        """Kill every process by its PID and delete the temp dir."""
        for server in (*self.sentinels, *self.servers):
            server.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedisCluster:
    """A Redis Cluster of ``masters`` masters (each with ``replicas`` replicas), free ports."""

    def __init__(self, *, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="registryd-cluster-"))
        self.replicas_per_master = replicas
        self.nodes = [self._node(node_timeout_ms) for _ in range(masters * (1 + replicas))]

    def _node(self, node_timeout_ms: int) -> PrivateRedis:
        port = _cluster_port()
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            "--dir",
            str(self.dir),
        ]
        return PrivateRedis(port, args=args, cwd=self.dir)

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node as a seed."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes) + "/"

    @property
    def create_command(self) -> list[str]:
        """What makes the nodes one cluster (slots spread, replicas assigned)."""
        addresses = [n.address for n in self.nodes]
        replicas = ["--cluster-replicas", str(self.replicas_per_master)]
        return ["redis-cli", "--cluster", "create", *addresses, *replicas, "--cluster-yes"]

    async def start(self) -> None:
        """Start the nodes, create the cluster and wait until every node says it is ok."""
        for node in self.nodes:
            await node.start()
        process = await asyncio.create_subprocess_exec(
            *self.create_command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output.decode(errors="replace")
        await self.settled()

    async def settled(self, timeout: float = 30) -> None:
        """Every live node says ``cluster_state:ok``, replicas are in sync, slots agreed on."""
        live = [n for n in self.nodes if n.process is not None]
        for node in live:
            ok = partial(_holds, node, "CLUSTER", "INFO", check=lambda i: "cluster_state:ok" in i)
            await wait_for(ok, timeout)
            synced = partial(
                _holds, node, "ROLE", check=lambda r: r[0] == "master" or r[3] == "connected"
            )
            await wait_for(synced, timeout)

        async def agree() -> bool:
            try:
                views = [await self._slot_view(n) for n in live]
            except (RedisError, OSError):
                return False
            return all(view == views[0] for view in views)

        await wait_for(agree, timeout)

    async def _slot_view(self, node: PrivateRedis) -> list[tuple[int, int, int]]:
        slots = await _ask(node, "CLUSTER", "SLOTS")
        return sorted((int(s[0]), int(s[1]), int(s[2][1])) for s in slots)

    def node_on(self, port: int) -> PrivateRedis:
        """The node listening on ``port``."""
        return next(n for n in self.nodes if n.port == port)

    async def keyslot(self, key: str) -> int:
        """The slot of ``key`` (of its hash tag)."""
        return int(await _ask(self.nodes[0], "CLUSTER", "KEYSLOT", key))

    async def owner(self, slot: int) -> PrivateRedis:
        """The master serving ``slot`` now."""
        live = next(n for n in self.nodes if n.process is not None)
        for start, end, port in await self._slot_view(live):
            if start <= slot <= end:
                return self.node_on(port)
        raise AssertionError(f"slot {slot} is not served")

    async def masters(self) -> list[PrivateRedis]:
        """The nodes that are masters now."""
        live = [n for n in self.nodes if n.process is not None]
        roles = [await _holds(n, "ROLE", check=lambda r: r[0] == "master") for n in live]
        return [n for n, master in zip(live, roles, strict=True) if master]

    async def migrate_slot(self, slot: int, target: PrivateRedis, batch: int = 20) -> int:
        """Move ``slot`` to ``target`` as ``redis-cli --cluster reshard`` does; keys moved.

        IMPORTING on the target, MIGRATING on the source, MIGRATE in batches (clients
        meanwhile get ASK, or TRYAGAIN for a multi-key command whose keys are split),
        then SETSLOT NODE on every master.
        """
        source = await self.owner(slot)
        source_id = await _ask(source, "CLUSTER", "MYID")
        target_id = await _ask(target, "CLUSTER", "MYID")
        await _ask(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await _ask(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while keys := await _ask(source, "CLUSTER", "GETKEYSINSLOT", slot, batch):
            await _ask(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 10_000, "KEYS", *keys)
            moved += len(keys)
        for master in await self.masters():
            await _ask(master, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        await self.settled()
        return moved

    async def fail_over(self, slot: int) -> PrivateRedis:
        """``CLUSTER FAILOVER`` on a replica of the slot's master; the new master."""
        master = await self.owner(slot)
        master_id = await _ask(master, "CLUSTER", "MYID")
        replicas: Sequence[str] = await _ask(master, "CLUSTER", "REPLICAS", master_id)
        assert replicas, "the slot's master has no replica"
        port = int(replicas[0].split()[1].split("@")[0].rsplit(":", 1)[1])
        replica = self.node_on(port)
        await _ask(replica, "CLUSTER", "FAILOVER")
        await wait_for(lambda: _holds(replica, "ROLE", check=lambda r: r[0] == "master"), 30)
        await self.settled()
        return replica

    def stop(self) -> None:
        """Kill every node by its PID and delete the temp dir."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
