"""
The daemon's service tree: the pool, the listener, and the order in which
they start and stop.
"""

from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard import __version__
from avatard.pool import ConnectionPoolService
from avatard.protocol import WhoFactory


class ListenError(Exception):
    """
    The server could not listen where it was told to.  C{str()} of it is one
    sentence for the operator.
    """


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


class EndpointService(Service):
    """
    Listens on a stream server endpoint.

    Unlike L{twisted.application.internet.StreamServerEndpointService}, a
    failure to listen is not swallowed: when the endpoint fails at once (as
    TCP, UNIX and systemd endpoints do), L{privilegedStartService} raises
    L{ListenError}.

    @ivar port: the listening port, once listening.
    """

    name = "server"
    _log = Logger()

    def __init__(self, endpoint: IStreamServerEndpoint, factory: WhoFactory, description: str) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.port: IListeningPort | None = None
        self._listening: Deferred[IListeningPort] | None = None

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
    The whole daemon: a L{ConnectionPoolService} and an L{EndpointService}.

    Children start in that order (the pool before the listener).  Stopping
    is ordered too, where L{MultiService} would stop both at once: first
    stop listening, then let every connection answer what it has read (for
    at most C{shutdownTimeout} seconds), and only then close the pool.
    """

    _log = Logger()

    def __init__(
        self,
        pool: ConnectionPoolService,
        server: EndpointService,
        databaseDescription: str,
        shutdownTimeout: float,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.server = server
        self.databaseDescription = databaseDescription
        self.shutdownTimeout = shutdownTimeout
        pool.setServiceParent(self)
        server.setServiceParent(self)

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
            "avatard {version} serving {database} on {where}",
            version=__version__,
            database=self.databaseDescription,
            where=where,
        )

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self._log.info("avatard stopping: no new connections; answering what was read")
        stopped = self.server.stopService()
        stopping: Deferred[None] = succeed(None) if stopped is None else stopped
        stopping.addErrback(self._logStopFailure, "stop listening")
        stopping.addCallback(lambda _: self.server.factory.drain(self.shutdownTimeout))
        stopping.addCallback(lambda _: self.pool.stopService())
        stopping.addErrback(self._logStopFailure, "close the database pool")
        stopping.addCallback(lambda _: self._log.info("avatard stopped"))
        return stopping

    def _logStopFailure(self, failure: Failure, what: str) -> None:
        self._log.failure("Could not {what} cleanly", failure, what=what)
