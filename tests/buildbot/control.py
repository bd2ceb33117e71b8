"""A test-only service inside a live master: Buildbot's data API over a local socket.

The live tests drive the master the way its REST API would (``master.data.get`` and
``master.data.control``: force a build, pause, unpause, stop a worker) without
``buildbot-www``. One JSON object per line each way::

    {"op": "get", "path": ["workers"]}            -> {"ok": true, "result": [...]}
    {"op": "control", "action": "pause", "path": ["workers", 1], "args": {}}
    {"op": "info"}                    -> {"ok": true, "result": {"masterid": 1, "reactor": ...}}
"""

from __future__ import annotations

import json
from collections import UserList
from typing import Any

from buildbot.util import service
from twisted.internet import defer, protocol, reactor
from twisted.protocols import basic
from twisted.python.failure import Failure


class ControlProtocol(basic.LineReceiver):
    """One connection: a request per line, a reply per line."""

    delimiter = b"\n"

    def __init__(self, master: Any) -> None:
        self.master = master

    def lineReceived(self, line: bytes) -> None:  # noqa: N802 - Twisted's and Buildbot's API name
        """Serve one request."""
        request = json.loads(line)
        deferred = defer.Deferred.fromCoroutine(self.handle(request))
        deferred.addCallbacks(self._reply, self._error)

    async def handle(self, request: dict[str, Any]) -> Any:
        """The data API call a request names."""
        path = tuple(request.get("path", ()))
        if request["op"] == "get":
            result = await self.master.data.get(path)
            return list(result) if isinstance(result, UserList) else result
        if request["op"] == "control":
            return await self.master.data.control(request["action"], request.get("args", {}), path)
        return {
            "masterid": self.master.masterid,
            "name": self.master.name,
            "reactor": type(self.master.reactor).__name__,
        }

    def _reply(self, result: Any) -> None:
        self._send({"ok": True, "result": result})

    def _error(self, failure: Failure) -> None:
        self._send({"ok": False, "error": failure.getErrorMessage()})

    def _send(self, reply: dict[str, Any]) -> None:
        self.sendLine(json.dumps(reply, default=str).encode())  # type: ignore[no-untyped-call]


class ControlFactory(protocol.ServerFactory):
    """Makes a :class:`ControlProtocol` per connection."""

    def __init__(self, master: Any) -> None:
        self.master = master

    def buildProtocol(self, addr: Any) -> ControlProtocol:  # noqa: N802 - Twisted's and Buildbot's API name
        """A protocol for one connection."""
        return ControlProtocol(self.master)


class Control(service.BuildbotService):  # type: ignore[misc]
    """Listens on ``127.0.0.1:<port>`` once configured; ``c['services'] = [Control(port)]``."""

    name = "registryd-test-control"
    listening: Any = None

    def checkConfig(self, port: int) -> None:  # noqa: N802 - Twisted's and Buildbot's API name
        """Any port."""

    def reconfigService(self, port: int) -> None:  # noqa: N802 - Twisted's and Buildbot's API name
        """Start listening (once)."""
        if self.listening is None:
            self.listening = reactor.listenTCP(  # type: ignore[attr-defined]
                port, ControlFactory(self.master), interface="127.0.0.1"
            )

    def stopService(self) -> Any:  # noqa: N802 - Twisted's and Buildbot's API name
        """Stop listening, then stop."""
        listening, self.listening = self.listening, None
        if listening is not None:
            listening.stopListening()
        return super().stopService()
