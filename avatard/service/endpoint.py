"""
Listening on an endpoint as a service, without swallowing a failure to
listen.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.service.EndpointService")

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


class EndpointService(Service, Generic[F]):
    """
    Listens on a stream server endpoint, with one factory.

    Unlike L{twisted.application.internet.StreamServerEndpointService}, a
    failure to listen is not swallowed: when the endpoint fails at once (as
    TCP, UNIX and systemd endpoints do), L{privilegedStartService} raises
    L{ListenError}.

    @ivar port: the listening port, once listening.
    """

    def __init__(
        self, endpoint: IStreamServerEndpoint, factory: F, description: str, label: str = ""
    ) -> None:
        """
        @param label: what the start line writes before the address, to
            tell this front-end from the WHO protocol's (C{"finger "}).
        """
        self.label = label
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
                lambda f: _log.error(
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
