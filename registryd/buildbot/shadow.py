"""Buildbot's own ``workers`` table, kept as the shadow of the registry's workers.

Buildbot's other tables point at ``workers.id`` (``builds.workerid`` has a foreign key
that PostgreSQL and MySQL enforce), and every id Buildbot shows is one of those. So the
SQL row stays the source of a worker's Buildbot id: ``findWorkerId`` finds or inserts
it with Buildbot's own SQL code, keyed by the unique name, exactly as stock Buildbot
does, and masters sharing one database agree on it. Everything else about a worker
(connections, builders, flags, info) lives in registryd only; the SQL rows keep what
they held. Names map the two sides onto each other and are cached here (a worker row
is never renamed or deleted by Buildbot).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import sqlalchemy as sa
from buildbot.db.workers import WorkerModel, WorkersConnectorComponent

__all__ = ["Shadow"]

#: Names per ``IN (...)`` query, below every database's parameter limit.
_BATCH: Final = 500


class Shadow:
    """Buildbot ids of workers by name and back, from the SQL ``workers`` table."""

    def __init__(self, sql: WorkersConnectorComponent) -> None:
        self.sql = sql
        self.db: Any = sql.db
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._own_builders: tuple[int, set[int]] | None = None

    def _remember(self, workerid: int, name: str) -> int:
        self._ids[name], self._names[workerid] = workerid, name
        return workerid

    async def find(self, name: str) -> int:
        """The Buildbot id of ``name``: its SQL row, inserted when new."""
        known = self._ids.get(name)
        if known is not None:
            return known
        return self._remember(int(await self.sql.findWorkerId(name)), name)

    async def name_of(self, workerid: int) -> str | None:
        """The name of the worker with this Buildbot id, or ``None`` without a row."""
        known = self._names.get(workerid)
        if known is not None:
            return known
        tbl = self.db.model.workers

        def thd(conn: Any) -> str | None:  # noqa: ANN401 - a SQLAlchemy connection
            found: str | None = conn.execute(
                sa.select(tbl.c.name).where(tbl.c.id == workerid)
            ).scalar()
            return found

        name: str | None = await self.db.pool.do(thd)
        if name is not None:
            self._remember(workerid, name)
        return name

    async def ids_of(self, names: Iterable[str]) -> dict[str, int]:
        """The Buildbot ids of ``names``; a name without a row gets one.

        (Another client of this registry created that worker.)
        """
        wanted = set(names)
        missing = sorted(wanted - self._ids.keys())
        for start in range(0, len(missing), _BATCH):
            for workerid, name in await self._select(missing[start : start + _BATCH]):
                self._remember(workerid, name)
        for name in sorted(wanted - self._ids.keys()):
            await self.find(name)
        return {name: self._ids[name] for name in wanted}

    async def _select(self, names: list[str]) -> list[tuple[int, str]]:
        tbl = self.db.model.workers

        def thd(conn: Any) -> list[tuple[int, str]]:  # noqa: ANN401 - a SQLAlchemy connection
            query = sa.select(tbl.c.id, tbl.c.name).where(tbl.c.name.in_(names))
            return [(row.id, row.name) for row in conn.execute(query)]

        rows: list[tuple[int, str]] = await self.db.pool.do(thd)
        return rows

    async def usable_builderids(self, masterid: int, builderids: Iterable[int]) -> list[int]:
        """The builder ids with a ``builder_masters`` row on ``masterid``, as SQL keeps.

        Buildbot's SQL ``workerConfigured`` drops the others (its pairs reference those
        rows), and the builders component lists only them; registryd does the same.
        This master's own rows are read once and cached: only this master adds or
        removes them, through the builders component, which calls :meth:`forget_builders`.
        """
        wanted = set(builderids)
        if not wanted:
            return []
        if masterid != self.db.master.masterid:
            return sorted(wanted & await self._builders_of(masterid))
        if self._own_builders is None or self._own_builders[0] != masterid:
            self._own_builders = (masterid, await self._builders_of(masterid))
        return sorted(wanted & self._own_builders[1])

    def forget_builders(self) -> None:
        """Drop the cached ``builder_masters`` rows (they changed)."""
        self._own_builders = None

    async def _builders_of(self, masterid: int) -> set[int]:
        tbl = self.db.model.builder_masters

        def thd(conn: Any) -> set[int]:  # noqa: ANN401 - a SQLAlchemy connection
            query = sa.select(tbl.c.builderid).where(tbl.c.masterid == masterid)
            return {row.builderid for row in conn.execute(query)}

        builders: set[int] = await self.db.pool.do(thd)
        return builders

    async def sql_state(self, workerids: Iterable[int]) -> list[WorkerModel]:
        """What Buildbot's own SQL tables say of these workers (rows never made by us)."""
        wanted = set(workerids)
        models = [m for m in await self.sql.getWorkers() if m.id in wanted]
        for model in models:
            self._remember(model.id, model.name)
        return models
