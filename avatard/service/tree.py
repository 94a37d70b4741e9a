"""
The daemon's service tree, and the order in which it starts and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard import __version__
from avatard.addresses import describeAddress
from avatard.protocol.connections import Connections
from avatard.service.endpoint import EndpointService, ListenError

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.service.AvatardService")


class AvatardService(MultiService):
    """
    The whole daemon: the storage's service (the connection pool, and what
    else reads the database), the L{EndpointService}s of its front-ends
    (one per C{--port}, serving the WHO protocol, and one per C{--finger}),
    whose connections are C{connections}, and the helpers beside them (the
    readiness notifier, metrics, the access log, log reopening).

    Children start in that order: the pool before the listeners, helpers
    last.  Stopping is ordered too, where L{MultiService} would stop them
    all at once, and here is where the order is stated:

     1. tell the service manager (C{announcer}, when there is one);
     2. stop listening, on every listener;
     3. let every connection answer what it has read, for at most
        C{shutdownTimeout} seconds, whichever front-end it is of;
     4. stop the storage: queries still running give up, the pool closes;
     5. stop the helpers, last, so that metrics can be read during the
        shutdown.

    @ivar details: the settings the start line names after the address.
    @ivar summary: what the daemon did, for the stop line.
    """

    def __init__(
        self,
        storage: IService,
        servers: Sequence[EndpointService[Any]],
        connections: Connections,
        databaseDescription: str,
        shutdownTimeout: float,
        details: str = "",
        summary: Callable[[], str] | None = None,
        announcer: IService | None = None,
        helpers: Sequence[IService] = (),
    ) -> None:
        super().__init__()
        self.storage = storage
        self.servers = list(servers)
        self.connections = connections
        self.databaseDescription = databaseDescription
        self.shutdownTimeout = shutdownTimeout
        self.details = details
        self.summary = summary
        self.announcer = announcer
        self.helpers = [announcer, *helpers] if announcer is not None else list(helpers)
        storage.setServiceParent(self)
        for server in self.servers:
            server.setServiceParent(self)
        for helper in self.helpers:
            helper.setServiceParent(self)

    def privilegedStartService(self) -> None:
        """
        Listen (possibly on a privileged port).  A failure to listen ends the
        process with one line naming the problem, not a traceback.
        """
        try:
            super().privilegedStartService()
        except ListenError as e:
            raise SystemExit(f"avatard: {e}") from None

    def startService(self) -> None:
        super().startService()
        where = ", ".join(
            server.label
            + (describeAddress(server.port.getHost()) if server.port is not None else server.description)
            for server in self.servers
        )
        _log.info(
            "avatard {version} serving {database} on {where}{details}",
            version=__version__,
            database=self.databaseDescription,
            where=where,
            details=f" ({self.details})" if self.details else "",
        )

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        _log.info("avatard stopping: no new connections; answering what was read")
        stopping: Deferred[None] = succeed(None)
        if self.announcer is not None and self.announcer.running:
            stopping = maybeDeferred(self.announcer.stopService)
        stopping.addCallback(lambda _: self._stopListening())
        stopping.addErrback(self._logStopFailure, "stop listening")
        stopping.addCallback(lambda _: self._drain())
        stopping.addCallback(lambda _: self.storage.stopService())
        stopping.addErrback(self._logStopFailure, "close the database pool")
        stopping.addCallback(lambda _: self._stopHelpers())
        stopping.addErrback(self._logStopFailure, "stop")
        stopping.addCallback(lambda _: self._stopped())
        return stopping

    def _stopListening(self) -> Deferred[list[object]]:
        return gatherResults(
            [maybeDeferred(server.stopService) for server in self.servers], consumeErrors=True
        )

    def _drain(self) -> Deferred[None]:
        return self.connections.drain(self.shutdownTimeout)

    def _stopHelpers(self) -> Deferred[list[object]]:
        return gatherResults(
            [maybeDeferred(helper.stopService) for helper in reversed(self.helpers) if helper.running],
            consumeErrors=True,
        )

    def _stopped(self) -> None:
        if self.summary is None:
            _log.info("avatard stopped")
        else:
            _log.info("avatard stopped after {summary}", summary=self.summary())

    def _logStopFailure(self, failure: Failure, what: str) -> None:
        _log.failure("Could not {what} cleanly", failure, what=what)


def whereListening(servers: Sequence[EndpointService[Any]]) -> Deferred[str]:
    """
    @return: a L{Deferred} that fires once every one of C{servers} listens,
        with where they listen, as the start line names it
        (C{127.0.0.1:8787, unix:/run/avatard.sock, finger 127.0.0.1:79}).
    """
    listening = gatherResults([server.whenListening() for server in servers])
    return listening.addCallback(
        lambda ports: ", ".join(
            server.label + describeAddress(port.getHost())
            for server, port in zip(servers, ports, strict=True)
        )
    )
