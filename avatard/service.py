"""
The daemon's service tree: the pool, the listener, and the order in which
they start and stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from twisted.application.service import IService, MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IAddress, IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard import __version__
from avatard.protocol import WhoFactory
from avatard.systemd import Readiness

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=IProtocolFactory)


class ListenError(Exception):
    """
    The server could not listen where it was told to.  C{str()} of it is one
    sentence for the operator.
    """


def endpointProblem(option: str, description: str, error: Exception) -> str:
    """
    @param error: what C{serverFromString} raised for C{description}, given
        as C{option}.
    @return: one line saying why the endpoint cannot be used.
    """
    if description.split(":", 1)[0].lower() == "systemd" and isinstance(error, (IndexError, KeyError)):
        # Twisted's systemd parser finds no such inherited socket.
        return (
            f"avatard: {option} {description!r}: systemd passed no such socket to this process "
            "(LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES do not name it); start it through "
            "its socket unit, as contrib/systemd/avatard.socket does"
        )
    return f"avatard: {option} {description!r} cannot be used: {error}"


def describeAddress(address: IAddress) -> str:
    """
    @return: an address as an operator would write it: C{127.0.0.1:8787},
        C{[::1]:8787}, C{unix:/run/avatard.sock}.
    """
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        return f"unix:{name.decode('utf-8', 'replace') if isinstance(name, bytes) else name}"
    return str(address)


class EndpointService(Service, Generic[F]):
    """
    Listens on a stream server endpoint, with one factory.

    Unlike L{twisted.application.internet.StreamServerEndpointService}, a
    failure to listen is not swallowed: when the endpoint fails at once (as
    TCP, UNIX and systemd endpoints do), L{privilegedStartService} raises
    L{ListenError}.

    @ivar port: the listening port, once listening.
    """

    name = "server"
    _log = Logger()

    def __init__(self, endpoint: IStreamServerEndpoint, factory: F, description: str) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.port: IListeningPort | None = None
        self._listening: Deferred[IListeningPort] | None = None
        self._waiting: list[Deferred[IListeningPort]] = []

    def whenListening(self) -> Deferred[IListeningPort]:
        """
        @return: a L{Deferred} that fires with the listening port once there
            is one (at once if listening already).
        """
        if self.port is not None:
            return succeed(self.port)
        d: Deferred[IListeningPort] = Deferred()
        self._waiting.append(d)
        return d

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        if self._listening is None:
            self._listen()

    def _listen(self) -> None:
        failed: list[Failure] = []
        self._listening = self.endpoint.listen(self.factory)
        self._listening.addCallbacks(self._listened, failed.append)
        if failed:
            raise ListenError(f"cannot listen on {self.description}: {failed[0].getErrorMessage()}")
        if self.port is None:
            # The endpoint answers later; a failure then can only be logged.
            self._listening.addErrback(
                lambda f: self._log.error(
                    "Cannot listen on {description}: {reason}",
                    description=self.description,
                    reason=f.getErrorMessage(),
                )
            )

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(port)
        return port

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            self._listening = None
            return port.stopListening()
        if self._listening is not None:
            self._listening.cancel()
            self._listening = None
        return None


class AvatardService(MultiService):
    """
    The whole daemon: the database's service (which owns its pool), an
    L{EndpointService}, and any helper services added with L{addHelper}.

    Children start in that order (the pool before the listener, helpers
    last).  Stopping is ordered too, where L{MultiService} would stop them
    all at once: first tell the service manager (through C{readiness}),
    stop listening, then let every connection answer what it has read (for
    at most C{shutdownTimeout} seconds), then close the pool, and only then
    stop the helpers (so that metrics can be read during the shutdown).

    @ivar details: the settings the start line names after the address.
    @ivar readiness: told when the daemon serves and when it stops.
    @ivar summary: what the daemon did, for the stop line.
    """

    _log = Logger()

    def __init__(
        self,
        pool: IService,
        server: EndpointService[WhoFactory],
        databaseDescription: str,
        shutdownTimeout: float,
        details: str = "",
        readiness: Readiness | None = None,
        summary: Callable[[], str] | None = None,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.server = server
        self.databaseDescription = databaseDescription
        self.shutdownTimeout = shutdownTimeout
        self.details = details
        self.readiness = readiness
        self.summary = summary
        self.helpers: list[IService] = []
        pool.setServiceParent(self)
        server.setServiceParent(self)

    def addHelper(self, helper: IService) -> None:
        """
        Add a service that starts after the listener and stops after the
        pool is closed.
        """
        self.helpers.append(helper)
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
        port = self.server.port
        where = describeAddress(port.getHost()) if port is not None else self.server.description
        self._log.info(
            "avatard {version} serving {database} on {where}{details}",
            version=__version__,
            database=self.databaseDescription,
            where=where,
            details=f" ({self.details})" if self.details else "",
        )
        if self.readiness is not None:
            readiness = self.readiness
            self.server.whenListening().addCallback(
                lambda port: readiness.serving(describeAddress(port.getHost()))
            )

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self._log.info("avatard stopping: no new connections; answering what was read")
        if self.readiness is not None:
            self.readiness.stopping()
        stopped = self.server.stopService()
        stopping: Deferred[None] = succeed(None) if stopped is None else stopped
        stopping.addErrback(self._logStopFailure, "stop listening")
        stopping.addCallback(lambda _: self.server.factory.drain(self.shutdownTimeout))
        stopping.addCallback(lambda _: self.pool.stopService())
        stopping.addErrback(self._logStopFailure, "close the database pool")
        stopping.addCallback(lambda _: self._stopHelpers())
        stopping.addErrback(self._logStopFailure, "stop")
        stopping.addCallback(lambda _: self._stopped())
        return stopping

    def _stopHelpers(self) -> Deferred[list[object]]:
        return gatherResults(
            [maybeDeferred(helper.stopService) for helper in reversed(self.helpers) if helper.running],
            consumeErrors=True,
        )

    def _stopped(self) -> None:
        if self.summary is None:
            self._log.info("avatard stopped")
        else:
            self._log.info("avatard stopped after {summary}", summary=self.summary())

    def _logStopFailure(self, failure: Failure, what: str) -> None:
        self._log.failure("Could not {what} cleanly", failure, what=what)
