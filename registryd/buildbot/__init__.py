"""Keep a Buildbot 4.x master's workers in registryd: ``install(master)`` in ``buildbot.tac``.

::

    m = BuildMaster(basedir, configfile, umask)
    registryd.buildbot.install(m, amqp_url="amqp://ci:secret@mq.example/", prefix="ci")
    m.setServiceParent(application)

:func:`install` replaces ``master.db.workers`` with :class:`RegistryWorkersComponent`
and ``master.db.builders`` with :class:`RegistryBuildersComponent` before the master
starts, so that every call Buildbot makes reaches registryd. It works with any Twisted
reactor and on Buildbot's fake master under ``TestReactorMixin``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python import log as twisted_log

from registryd.client import DEFAULT_URL

from .bridge import Bridge
from .builders import RegistryBuildersComponent
from .connector import RegistryWorkersComponent
from .link import Link, LinkSettings, RegistryUnreachable
from .liveness import Liveness
from .remote import RemoteWorkers

__all__ = [
    "RegistryBuildersComponent",
    "RegistryUnreachable",
    "RegistryWorkersComponent",
    "install",
]

#: Tables whose rows, written straight into SQL, name a worker (Buildbot's test data).
_WORKER_TABLES = {
    "workers": "id",
    "connected_workers": "workerid",
    "configured_workers": "workerid",
}


def install(
    master: Any,  # noqa: ANN401 - Buildbot's BuildMaster or fake master (untyped)
    *,
    amqp_url: str = DEFAULT_URL,
    prefix: str = "registry",
    timeout: float = 5.0,
    call_timeout: float = 15.0,
    blocking: bool | None = None,
) -> RegistryWorkersComponent:
    """Make ``master`` keep its workers in registryd; return the new workers component.

    Call it right after ``BuildMaster(...)``, before the master starts. ``timeout``
    bounds each registry round trip and ``call_timeout`` each connector call (a write
    may take a few round trips: the start-up barrier, an id look-up). ``blocking``
    forces or forbids the bridge's blocking mode (default: detected from the reactor).
    """
    db = master.db
    bridge = Bridge(master.reactor, blocking=blocking)
    link = Link(LinkSettings(amqp_url, prefix, timeout), _logger(master.reactor))
    remote = RemoteWorkers(link)
    component = RegistryWorkersComponent(
        db,
        sql=db.workers,
        bridge=bridge,
        remote=remote,
        liveness=Liveness(link, remote, link.log),
        call_timeout=call_timeout,
    )
    _swap(db, "workers", component)
    _swap(db, "builders", RegistryBuildersComponent(db, component))
    _hook_shutdown(db, component)
    if hasattr(db, "insert_test_data"):
        _hook_test_data(db, component)
    return component


def _logger(reactor: Any) -> Any:  # noqa: ANN401 - Twisted's reactor (untyped here)
    """Log lines into the master's log, from whichever thread (the reactor writes them)."""

    def log(text: str) -> None:
        reactor.callFromThread(twisted_log.msg, f"registryd: {text}")

    return log


def _swap(db: Any, attribute: str, component: Any) -> None:  # noqa: ANN401 - Buildbot objects
    """Put ``component`` in place of ``db.<attribute>``, as a child service of ``db``."""
    old = getattr(db, attribute)
    if old.parent is not None:
        old.disownServiceParent()
    setattr(db, attribute, component)
    component.setServiceParent(db)


def _hook_shutdown(db: Any, component: RegistryWorkersComponent) -> None:  # noqa: ANN401
    """Stop the component when the database connector shuts down.

    ``DBConnector.stopService`` calls ``_shutdown`` after every other service of the
    master stopped (their last writes went out), and Buildbot's fake master calls it
    alone: either way the master is marked stopped in registryd and the loop ends.
    """
    shutdown = db._shutdown

    @defer.inlineCallbacks
    def _shutdown() -> Any:  # noqa: ANN401 - a Twisted generator
        try:
            yield component.stop()
        except Exception as exc:  # noqa: BLE001 - a shutdown goes on whatever registryd says
            twisted_log.msg(f"registryd: could not mark the master stopped: {exc}")
        finally:
            component.bridge.close()
        yield shutdown()

    db._shutdown = _shutdown


def _hook_test_data(db: Any, component: RegistryWorkersComponent) -> None:  # noqa: ANN401
    """Carry worker rows of Buildbot's fake database into registryd as they are inserted.

    Buildbot's own tests write ``fakedb.Worker``, ``ConnectedWorker`` and
    ``ConfiguredWorker`` rows straight into SQL; the component then reads registryd, so
    each insert is followed by an import of the workers those rows name.
    """
    insert = db.insert_test_data

    @defer.inlineCallbacks
    def insert_test_data(rows: list[Any]) -> Any:  # noqa: ANN401 - a Twisted generator
        yield insert(rows)
        component.shadow.forget_builders()
        workerids = {
            row.values[_WORKER_TABLES[row.table]]
            for row in rows
            if getattr(row, "table", None) in _WORKER_TABLES
        }
        if workerids:
            yield component.import_from_sql(workerids)

    db.insert_test_data = insert_test_data
