"""Prometheus metrics and the health flag, served on ``/metrics`` and ``/healthz``.

Each daemon owns its own :class:`CollectorRegistry`, so several daemons (tests) can run
in one process; the process, platform and GC collectors are registered on it too. No
``_created`` series: they double every counter and no alert needs them. The HTTP
endpoint is prometheus_client's WSGI app behind a small router, served from a thread by
the standard library's wsgiref.
"""

from __future__ import annotations

import platform
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
)

from registryd import __version__
from registryd.protocol import VERSION

__all__ = ["CRASH_WINDOW", "Health", "Metrics", "MetricsServer", "RelayLag"]

# Process-wide in prometheus_client, once (wanted everywhere); it ships no annotations.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Seconds ``/healthz`` stays 503 after a task crashed, so that a crash loop shows.
CRASH_WINDOW = 30.0

StartResponse = Callable[..., Any]


class RelayLag:
    """How long committed changes have waited for the relay to publish them.

    The daemon reports the committed revision every few seconds and the relay reports
    what it published; each revision seen committed but not yet published is kept with
    the time it was first seen. The age of the oldest is the lag, accurate to the
    reporting interval. Only the process holding the relay role measures it (another
    process's relay publishes, so this one would only see its own idle relay fall behind).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: deque[tuple[int, float]] = deque()
        self._epoch: str | None = None
        self.committed = 0
        self.published = 0
        self.active = False

    def commit_seen(self, revision: int, epoch: str | None) -> None:
        """The committed revision and the epoch, as just read."""
        if epoch != self._epoch:  # the first reading, or a reset: revisions start again
            self._epoch, self.committed = epoch, min(revision, self.published)
            self._waiting.clear()
        if revision > self.committed:  # so also above what was published
            self._waiting.append((revision, self._clock()))
            self.committed = revision

    def publish_seen(self, revision: int) -> None:
        """The relay published everything up to ``revision`` (so it is committed too)."""
        self.published = revision
        self.committed = max(self.committed, revision)
        while self._waiting and self._waiting[0][0] <= revision:
            self._waiting.popleft()

    def seconds(self) -> float:
        """Seconds the oldest unpublished commit has waited; 0 when none or not relaying."""
        if not self.active or not self._waiting:
            return 0.0
        return self._clock() - self._waiting[0][1]


class Metrics:
    """The daemon's counters, gauges and histograms, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build = Info("registryd_build", "Versions of registryd", registry=r)
        self.build.info(
            {"version": __version__, "protocol": VERSION, "python": platform.python_version()}
        )
        self._events(r)
        self._rpc(r)
        self._relay(r)
        self._running(r)

    def _events(self, r: CollectorRegistry) -> None:
        self.events = Counter(
            "registryd_events_total",
            "Lifecycle events taken from the queue, by outcome",
            ["outcome"],
            registry=r,
        )
        self.events_applied = Counter(
            "registryd_events_applied_total",
            "Events applied (duplicates left out), by event type",
            ["type"],
            registry=r,
        )
        self.events_refused = Counter(
            "registryd_events_refused_total",
            "Events refused and dead-lettered, by event type ('unknown' if none) and code",
            ["type", "code"],
            registry=r,
        )
        self.dead_letters = Counter(
            "registryd_dead_letters_total",
            "Events this process sent to the dead queue, by error code",
            ["code"],
            registry=r,
        )
        self.event_batches = Histogram(
            "registryd_event_batch_size",
            "Events applied per Redis round trip",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self.queue_messages = Gauge(
            "registryd_queue_messages",
            "Messages ready in a queue (events, rpc, dead), refreshed every few seconds",
            ["queue"],
            registry=r,
        )

    def _rpc(self, r: CollectorRegistry) -> None:
        self.rpc = Counter(
            "registryd_rpc_requests_total",
            "RPC requests answered, by method and result code",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "registryd_rpc_seconds",
            "Time to serve one RPC request, by method",
            ["method"],
            registry=r,
        )

    def _relay(self, r: CollectorRegistry) -> None:
        self.lag = RelayLag()
        self.notifications = Counter(
            "registryd_notifications_total",
            "Notifications published with a confirm",
            registry=r,
        )
        self.committed_revision = Gauge(
            "registryd_committed_revision",
            "Last revision committed to the registry (read every few seconds)",
            registry=r,
        )
        self.relay_revision = Gauge(
            "registryd_relay_revision",
            "Last revision the relay of this process published",
            registry=r,
        )
        self.relay_active = Gauge(
            "registryd_relay_active",
            "1 while this process holds the relay role (publishes the notifications)",
            registry=r,
        )
        lag = Gauge(
            "registryd_relay_lag_seconds",
            "Age of the oldest committed change not yet published (0 when caught up)",
            registry=r,
        )
        lag.set_function(self.lag.seconds)

    def _running(self, r: CollectorRegistry) -> None:
        self.expired_masters = Counter(
            "registryd_masters_expired_total",
            "Masters expired by this process",
            registry=r,
        )
        self.backend_errors = Counter(
            "registryd_backend_errors_total",
            "Failures talking to a backend (redis, rabbitmq)",
            ["backend"],
            registry=r,
        )
        self.task_crashes = Counter(
            "registryd_task_crashes_total",
            "Tasks of the daemon that died of an unexpected exception (a bug), by task",
            ["task"],
            registry=r,
        )
        self.ready = Gauge("registryd_ready", "1 while /healthz answers 200", registry=r)

    def committed(self, revision: int, epoch: str | None) -> None:
        """The registry's committed revision and epoch, as just read."""
        self.lag.commit_seen(revision, epoch)
        self.committed_revision.set(self.lag.committed)

    def relayed(self, revision: int) -> None:
        """The relay of this process holds the role and has published up to ``revision``."""
        self.relay_active.set(1)
        self.lag.active = True
        self.lag.publish_seen(revision)
        self.relay_revision.set(revision)
        self.committed_revision.set(self.lag.committed)

    def not_relaying(self) -> None:
        """Another process holds the relay role (or this one gave it up)."""
        self.relay_active.set(0)
        self.lag.active = False


class Health:
    """Whether the daemon serves: consuming events with both backends answering.

    Every change of :meth:`state` is announced to the callbacks of :meth:`watch` (the
    daemon turns them into systemd ``STATUS=`` lines), so the flags are set through
    properties and :meth:`fail`/:meth:`recover`, not as plain attributes.
    """

    def __init__(self) -> None:
        self._consuming = False
        self._serving_rpc = False
        self._stopping = False
        self._failing: set[str] = set()
        #: The last crash: the task and its error, and when (``time.monotonic()``).
        self.crashed: str | None = None
        self.crashed_at = 0.0
        self._watchers: list[Callable[[str], None]] = []
        self._announced = self.state()

    @property
    def consuming(self) -> bool:
        """Events are being consumed."""
        return self._consuming

    @consuming.setter
    def consuming(self, value: bool) -> None:
        self._consuming = value
        self.refresh()

    @property
    def serving_rpc(self) -> bool:
        """RPC requests are being served."""
        return self._serving_rpc

    @serving_rpc.setter
    def serving_rpc(self, value: bool) -> None:
        self._serving_rpc = value
        self.refresh()

    @property
    def stopping(self) -> bool:
        """A stop was asked for."""
        return self._stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value
        self.refresh()

    @property
    def failing(self) -> frozenset[str]:
        """The backends being retried (``redis``, ``rabbitmq``)."""
        return frozenset(self._failing)

    def started(self, *answering: str) -> None:
        """Consuming (again), the ``answering`` backends no longer failing: one change."""
        self._consuming = True
        self._failing.difference_update(answering)
        self.refresh()

    def fail(self, backend: str) -> None:
        """``backend`` failed; it is being retried."""
        self._failing.add(backend)
        self.refresh()

    def recover(self, backend: str) -> None:
        """``backend`` answers again (while consuming; before that, :meth:`started` says so).

        A session's tasks run while it is still starting; were their first answer to clear
        the failure, the state would go from retrying through starting to serving.
        """
        if self._consuming:
            self._failing.discard(backend)
            self.refresh()

    def crash(self, what: str) -> None:
        """Record a crash: not ready for :data:`CRASH_WINDOW` seconds from now."""
        self.crashed, self.crashed_at = what, time.monotonic()
        self.refresh()

    @property
    def recent_crash(self) -> str | None:
        """The last crash, if it is less than :data:`CRASH_WINDOW` seconds old."""
        if self.crashed and time.monotonic() - self.crashed_at < CRASH_WINDOW:
            return self.crashed
        return None

    @property
    def ready(self) -> bool:
        """True while consuming, not stopping, no backend failing, and no recent crash."""
        return self.state() == "serving"

    def state(self) -> str:
        """starting, serving, retrying <backends>, crashed: <what>, or stopping."""
        if self._stopping:
            return "stopping"
        if crash := self.recent_crash:
            return f"crashed: {crash}"
        if self._failing:
            return "retrying " + ", ".join(sorted(self._failing))
        return "serving" if self._consuming else "starting"

    def status(self) -> str:
        """One word or phrase for /healthz and logs (``ok`` while serving)."""
        state = self.state()
        return "ok" if state == "serving" else state

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(state)`` on every change of :meth:`state` from now on."""
        self._watchers.append(callback)

    def refresh(self) -> None:
        """Announce the state if it changed (also called when a crash ages out)."""
        state = self.state()
        if state != self._announced:
            self._announced = state
            for callback in self._watchers:
                callback(state)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        """Access logs would drown the daemon's own; scrapes are not news."""


class MetricsServer:
    """``/metrics`` and ``/healthz`` over HTTP, in a daemon thread."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._health = health
        self._metrics = metrics
        # Binding here makes a taken port fail at start, before anything else runs.
        self._server: WSGIServer = make_server(host, port, self._app, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked the OS for one)."""
        return int(self._server.server_port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            ready = self._health.ready
            self._metrics.ready.set(int(ready))
            status = "200 OK" if ready else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{self._health.status()}\n".encode()]
        if path == "/metrics":
            self._metrics.ready.set(int(self._health.ready))
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]
