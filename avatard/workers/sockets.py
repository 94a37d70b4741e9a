"""
The group's listening sockets: bound once by the twistd process, through
the same endpoint descriptions a single process listens on, and adopted by
every worker.

Both sides go through L{avatard.service.descriptions.listenOn} with a
reactor of their own: whatever an endpoint description wraps around the
socket it listens on (TLS, the PROXY header of C{haproxy:}) is built by
its parser as in a single process, and only the last step, making the
listening socket, differs.  The twistd process (L{bindAll}) binds each
socket and never accepts on it; a worker's L{InheritedReactor} adopts the
socket it inherited instead of binding one.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.fdesc import setNonBlocking
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from avatard.service.descriptions import DEFAULT_BACKLOG, listenOn
from avatard.service.endpoint import ListenError

FIRST_SOCKET = 3
"""
The first descriptor a worker inherits a listening socket on, after its
standard input, output and error (which are its pipes to the twistd
process).
"""


@dataclass(frozen=True)
class Listener:
    """
    What a worker listens on: an endpoint description, given as C{option}.

    @ivar answerAfterClose: as L{listenOn}'s.
    """

    option: str
    description: str
    answerAfterClose: bool = False


@dataclass
class BoundSocket:
    """
    A listening socket the twistd process holds for its workers.

    @ivar port: the twistd process's own port on it, which never accepts.
    @ivar inherited: the descriptor systemd passed it as (C{systemd:}
        endpoints), which a worker must find it at too; L{None} for the
        sockets the twistd process bound itself.
    """

    listener: Listener
    port: IListeningPort
    inherited: int | None

    def fileno(self) -> int:
        """
        @return: the twistd process's descriptor of the socket.
        """
        number: int = self.port.fileno()  # type: ignore[attr-defined]
        return number


class _Binding:
    """
    A reactor that makes listening sockets as the real one does, and
    remembers the descriptor systemd passed, when an endpoint adopts one.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.adopted: int | None = None
        directlyProvides(self, providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: IProtocolFactory) -> Any:
        self.adopted = fileDescriptor
        return self._reactor.adoptStreamPort(fileDescriptor, addressFamily, factory)


class _Unused(Protocol):
    """
    Never built: the twistd process's ports do not accept.
    """


def bindAll(reactor: Any, listeners: Sequence[Listener]) -> list[BoundSocket]:
    """
    Listen once on every one of C{listeners}, without accepting: the
    connections wait in each socket's queue for a worker to accept them.

    @raise SystemExit: with one line, when a description cannot be used or
        its socket cannot be bound.
    """
    bound = []
    unused = Factory.forProtocol(_Unused)
    unused.noisy = False
    for listener in listeners:
        binding = _Binding(reactor)
        endpoint = listenOn(binding, listener.option, listener.description, listener.answerAfterClose)
        ports: list[IListeningPort] = []
        failures: list[Failure] = []
        endpoint.listen(unused).addCallbacks(ports.append, failures.append)
        if failures or not ports:
            reason = failures[0].getErrorMessage() if failures else "the endpoint did not listen at once"
            error = ListenError(f"cannot listen on {listener.description}: {reason}")
            raise SystemExit(f"avatard: {error}")
        port = ports[0]
        # Only the workers accept.
        port.stopReading()  # type: ignore[attr-defined]
        bound.append(BoundSocket(listener, port, binding.adopted))
    return bound


def childDescriptors(sockets: Sequence[BoundSocket]) -> tuple[dict[int, int], list[int]]:
    """
    Where a worker finds each socket: one systemd passed at the descriptor
    systemd passed it as (a worker parses C{systemd:} descriptions as the
    twistd process did), the others after every descriptor systemd may
    have passed.

    @return: the worker's descriptors mapped to the twistd process's, and
        the worker's descriptor of each socket, in order.
    """
    inherited = [bound.inherited for bound in sockets if bound.inherited is not None]
    following = max([FIRST_SOCKET - 1, *inherited]) + 1
    mapping: dict[int, int] = {}
    numbers = []
    for bound in sockets:
        if bound.inherited is not None:
            number = bound.inherited
        else:
            number, following = following, following + 1
        mapping[number] = bound.fileno()
        numbers.append(number)
    return mapping, numbers


class AdoptedUNIXPort(unix.Port):
    """
    A listening UNIX socket adopted from the process that bound it.

    A limitation of Twisted (26.10): a UNIX socket adopted with
    C{adoptStreamPort} is made mode 0666 when it starts listening (whatever
    mode its owner gave it) and its path is removed when it stops; a worker
    sharing the socket with the rest of its group must do neither.  This
    port keeps the socket's mode and leaves its path to the process that
    bound it; it sets the private C{_preexistingSocket} as
    C{unix.Port._fromListeningDescriptor} does, the one place that does.
    Twisted listens again on an adopted UNIX socket, with the port's
    backlog: C{backlog} keeps the one the socket was bound with.
    """

    def __init__(
        self, fileDescriptor: int, factory: IProtocolFactory, reactor: Any, backlog: int = DEFAULT_BACKLOG
    ) -> None:
        listening = socket.fromfd(fileDescriptor, socket.AF_UNIX, socket.SOCK_STREAM)
        path = listening.getsockname()
        mode = 0o666
        if isinstance(path, str) and path:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        super().__init__(path, factory, backlog=backlog, mode=mode, reactor=reactor)
        self._preexistingSocket = listening

    def connectionLost(self, reason: Failure) -> None:
        tcp.Port.connectionLost(self, reason)


def _family(fileDescriptor: int) -> int:
    probe = socket.socket(fileno=os.dup(fileDescriptor))
    try:
        return int(probe.family)
    finally:
        probe.close()


class InheritedReactor:
    """
    A worker's reactor for one endpoint description: its listening socket
    is not bound but adopted from descriptor C{inherited}, whatever the
    description's parser asks for (C{listenTCP}, C{listenSSL},
    C{listenUNIX}); TLS is layered over it as C{listenSSL} would.  Sockets
    systemd passed (C{adoptStreamPort}) are adopted as the reactor does,
    UNIX ones as L{AdoptedUNIXPort}s.  Anything else is the reactor's own.
    """

    def __init__(self, reactor: Any, inherited: int) -> None:
        self._reactor = reactor
        self._inherited = inherited
        directlyProvides(self, providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def _adoptInherited(self, factory: IProtocolFactory, backlog: int = DEFAULT_BACKLOG) -> IListeningPort:
        number = self._inherited
        try:
            setNonBlocking(number)
            family = _family(number)
            if family == socket.AF_UNIX:
                port = AdoptedUNIXPort(number, factory, self._reactor, backlog)
                port.startListening()
                return port
            listening: IListeningPort = self._reactor.adoptStreamPort(number, family, factory)
            return listening
        finally:
            os.close(number)

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        return self._adoptInherited(factory)

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        return self._adoptInherited(TLSMemoryBIOFactory(contextFactory, False, factory, clock=self._reactor))

    def listenUNIX(
        self,
        address: str,
        factory: IProtocolFactory,
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> IListeningPort:
        return self._adoptInherited(factory, backlog)

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: IProtocolFactory) -> Any:
        if addressFamily == socket.AF_UNIX:
            port = AdoptedUNIXPort(fileDescriptor, factory, self._reactor)
            port.startListening()
            return port
        return self._reactor.adoptStreamPort(fileDescriptor, addressFamily, factory)
