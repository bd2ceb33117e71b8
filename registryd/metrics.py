"""Prometheus metrics and the health flag, served on ``/metrics`` and ``/healthz``.

Each daemon owns its own :class:`CollectorRegistry`, so several daemons (tests) can run
in one process. The HTTP endpoint is prometheus_client's WSGI app behind a small router,
served from a thread by the standard library's wsgiref.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

__all__ = ["CRASH_WINDOW", "Health", "Metrics", "MetricsServer"]

#: Seconds ``/healthz`` stays 503 after a task crashed, so that a crash loop shows.
CRASH_WINDOW = 30.0

StartResponse = Callable[..., Any]


class Metrics:
    """The daemon's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "registryd_events_total",
            "Lifecycle events taken from the queue, by outcome",
            ["outcome"],
            registry=r,
        )
        self.event_batches = Histogram(
            "registryd_event_batch_size",
            "Events applied per Redis round trip",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self.rpc = Counter(
            "registryd_rpc_requests_total",
            "RPC requests answered, by method and result code",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "registryd_rpc_seconds",
            "Time to serve one RPC request",
            ["method"],
            registry=r,
        )
        self.notifications = Counter(
            "registryd_notifications_total",
            "Notifications published with a confirm",
            registry=r,
        )
        self.relay_revision = Gauge(
            "registryd_relay_revision",
            "Last revision the relay published",
            registry=r,
        )
        self.expired_masters = Counter(
            "registryd_masters_expired_total",
            "Masters expired by this process",
            registry=r,
        )
        self.backend_errors = Counter(
            "registryd_backend_errors_total",
            "Failures talking to a backend",
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


@dataclass
class Health:
    """Whether the daemon serves: consuming events with both backends answering."""

    consuming: bool = False
    serving_rpc: bool = False
    stopping: bool = False
    failing: set[str] = field(default_factory=set)
    #: The last crash: the task and its error, and when (``time.monotonic()``).
    crashed: str | None = None
    crashed_at: float = 0.0

    def crash(self, what: str) -> None:
        """Record a crash: not ready for :data:`CRASH_WINDOW` seconds from now."""
        self.crashed, self.crashed_at = what, time.monotonic()

    @property
    def recent_crash(self) -> str | None:
        """The last crash, if it is less than :data:`CRASH_WINDOW` seconds old."""
        if self.crashed and time.monotonic() - self.crashed_at < CRASH_WINDOW:
            return self.crashed
        return None

    @property
    def ready(self) -> bool:
        """True while consuming, not stopping, no backend failing, and no recent crash."""
        return self.consuming and not self.stopping and not self.failing and not self.recent_crash

    def status(self) -> str:
        """One word or phrase for /healthz and logs."""
        if self.stopping:
            return "stopping"
        if crash := self.recent_crash:
            return f"crashed: {crash}"
        if self.failing:
            return "retrying " + ", ".join(sorted(self.failing))
        return "ok" if self.consuming else "starting"


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
