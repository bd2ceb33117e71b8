"""``master.db.builders`` with ``getBuilders(workerid=...)`` answered from registryd.

Buildbot's SQL query joins ``configured_workers`` for that filter (it serves
``/workers/n:ID/builders``); with the workers in registryd those rows stay empty. This
component keeps every other method of Buildbot's and answers that one filter with the
worker's ``configured_on`` pairs, as the SQL join would: the builders the worker is
configured on, each listing only the masters of those pairs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from buildbot.db.builders import BuilderModel, BuildersConnectorComponent
from twisted.internet import defer

if TYPE_CHECKING:
    from .connector import RegistryWorkersComponent

__all__ = ["RegistryBuildersComponent"]


class RegistryBuildersComponent(BuildersConnectorComponent):  # type: ignore[misc]
    """Buildbot's builders component, its ``workerid`` filter served by registryd."""

    def __init__(
        self,
        db: Any,  # noqa: ANN401 - Buildbot's DBConnector (untyped)
        workers: RegistryWorkersComponent,
    ) -> None:
        super().__init__(db)
        self.workers = workers

    def addBuilderMaster(  # noqa: N802 - Buildbot's API name
        self, builderid: int | None = None, masterid: int | None = None
    ) -> defer.Deferred[None]:
        """Buildbot's, then the workers component forgets its cached builder rows."""
        done: defer.Deferred[None] = super().addBuilderMaster(
            builderid=builderid, masterid=masterid
        )
        return done.addBoth(self._changed)

    def removeBuilderMaster(  # noqa: N802 - Buildbot's API name
        self, builderid: int | None = None, masterid: int | None = None
    ) -> defer.Deferred[None]:
        """Buildbot's, then the workers component forgets its cached builder rows."""
        done: defer.Deferred[None] = super().removeBuilderMaster(
            builderid=builderid, masterid=masterid
        )
        return done.addBoth(self._changed)

    def _changed(self, result: Any) -> Any:  # noqa: ANN401 - passed through
        self.workers.shadow.forget_builders()
        return result

    def getBuilders(  # noqa: N802 - Buildbot's API name
        self,
        masterid: int | None = None,
        projectid: int | None = None,
        workerid: int | None = None,
        _builderid: int | None = None,
    ) -> defer.Deferred[list[BuilderModel]]:
        """Builders by master, project and worker, as Buildbot's own component lists them."""
        sql: defer.Deferred[list[BuilderModel]] = super().getBuilders(
            masterid=masterid, projectid=projectid, _builderid=_builderid
        )
        if workerid is None:
            return sql
        return defer.Deferred.fromCoroutine(self._of_worker(sql, workerid))

    async def _of_worker(
        self, sql: defer.Deferred[list[BuilderModel]], workerid: int
    ) -> list[BuilderModel]:
        builders = await sql
        worker = await self.workers.getWorker(workerid=workerid)
        if worker is None:
            return []
        masters: dict[int, list[int]] = {}
        for pair in worker.configured_on:
            masters.setdefault(pair.builderid, []).append(pair.masterid)
        return [
            dataclasses.replace(b, masterids=sorted(masters[b.id]))
            for b in builders
            if b.id in masters
        ]
