"""
The group's listening sockets: bound once by the twistd process, through
the same endpoint descriptions a single process listens on, and adopted by
every worker.

Both sides go through L{avatard.service.descriptions.listenOn} with a
reactor of their own: whatever an endpoint description wraps around the
socket it listens on (TLS, the PROXY header of C{haproxy:}) is built by
its parser as in a single process, and only the last step, making the
listening socket, differs.  The twistd process (L{bindAll}) binds the
sockets and never accepts on them; a worker's L{InheritedReactor} adopts
the socket it inherited instead of binding one.

A TCP endpoint (C{tcp:}, C{tcp6:}, C{ssl:}, and those inside
C{haproxy:}) is bound once per worker, every socket with C{SO_REUSEPORT}
on the one address: the kernel spreads new connections evenly over the
sockets, whichever worker is busy.  On one socket shared by every worker,
the first to wake would take a whole burst (Twisted accepts up to a
hundred connections each time a socket is ready): 50 connections opened
at once all went to one worker of two.  The twistd process keeps every
socket, so connections waiting on the socket of a worker that died are
served by its replacement.  Sockets systemd passes and UNIX sockets
cannot be multiplied: each is one socket that every worker shares.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.abstract import isIPv6Address
from twisted.internet.error import CannotListenError
from twisted.internet.fdesc import setNonBlocking
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from avatard.protocol.listening import ListeningReactor
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
    The listening sockets the twistd process holds for its workers, for one
    endpoint description: one for each worker, or one they all share.

    @ivar ports: the twistd process's own ports on them, which never
        accept.
    @ivar inherited: the descriptor systemd passed the socket as
        (C{systemd:} endpoints), which a worker must find it at too;
        L{None} for the sockets the twistd process bound itself.
    """

    listener: Listener
    ports: list[IListeningPort]
    inherited: int | None

    @property
    def port(self) -> IListeningPort:
        """
        The first of C{ports}: where they listen.
        """
        return self.ports[0]

    def fileno(self, index: int) -> int:
        """
        @return: the twistd process's descriptor of worker C{index}'s socket
            (1 to the group's count).
        """
        port = self.ports[(index - 1) % len(self.ports)]
        number: int = port.fileno()  # type: ignore[attr-defined]
        return number


class _Binding(ListeningReactor):
    """
    A reactor that makes the listening sockets of one endpoint description
    for C{count} workers: TCP ones one per worker (L{bindReusingPort}),
    others as the real reactor does.  It remembers the descriptor systemd
    passed, when an endpoint adopts one.

    @ivar ports: every port made, the one the endpoint returns first.
    """

    def __init__(self, reactor: Any, count: int) -> None:
        super().__init__(reactor)
        self.count = count
        self.adopted: int | None = None
        self.ports: list[IListeningPort] = []

    def adoptStreamPort(self, fileDescriptor: int, addressFamily: int, factory: IProtocolFactory) -> Any:
        self.adopted = fileDescriptor
        port = self._reactor.adoptStreamPort(fileDescriptor, addressFamily, factory)
        self.ports = [port]
        return port

    def listenUNIX(self, address: str, factory: IProtocolFactory, *arguments: Any, **keywords: Any) -> Any:
        port = self._reactor.listenUNIX(address, factory, *arguments, **keywords)
        self.ports = [port]
        return port

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
        try:
            sockets = bindReusingPort(family, interface, port, backlog, self.count)
        except OSError as e:
            raise CannotListenError(interface, port, e) from None
        try:
            self.ports = [self._reactor.adoptStreamPort(s.fileno(), family, factory) for s in sockets]
        finally:
            for s in sockets:
                s.close()
        return self.ports[0]

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        # The twistd process never accepts: TLS is the workers' to add.
        return self.listenTCP(port, factory, backlog, interface)


def bindReusingPort(family: int, interface: str, port: int, backlog: int, count: int) -> list[socket.socket]:
    """
    Bind C{count} listening sockets to one address, with C{SO_REUSEPORT}.

    An address another program listens on is refused (C{EADDRINUSE}), even
    one that uses C{SO_REUSEPORT} too (another avatard): it is first bound
    without it, to see.  Port 0 chooses one port for all of them.

    @raise OSError: when the address cannot be bound.
    """
    # An empty interface is every address, as for Twisted's listenTCP.
    address = (interface, port)
    if port != 0:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(address)
            address = s.getsockname()[:2]
            s.listen(backlog)
            s.setblocking(False)
    except OSError:
        for s in sockets:
            s.close()
        raise
    return sockets


class _Unused(Protocol):
    """
    Never built: the twistd process's ports do not accept.
    """


class _ForTheWorkers(Factory):
    """
    The factory of the twistd process's ports, which never accept: it
    names them in their log lines (C{Sockets for the workers starting on
    8787}).
    """

    noisy = False
    protocol = _Unused

    def logPrefix(self) -> str:
        return "Sockets for the workers"


def bindAll(reactor: Any, listeners: Sequence[Listener], count: int) -> list[BoundSocket]:
    """
    Listen on every one of C{listeners} for C{count} workers, without
    accepting: the connections wait in each socket's queue for a worker to
    accept them.

    @raise SystemExit: with one line, when a description cannot be used or
        its socket cannot be bound.
    """
    bound = []
    unused = _ForTheWorkers()
    for listener in listeners:
        binding = _Binding(reactor, count)
        endpoint = listenOn(binding, listener.option, listener.description, listener.answerAfterClose)
        ports: list[IListeningPort] = []
        failures: list[Failure] = []
        endpoint.listen(unused).addCallbacks(ports.append, failures.append)
        if failures or not ports:
            reason = failures[0].getErrorMessage() if failures else "the endpoint did not listen at once"
            error = ListenError(f"cannot listen on {listener.description}: {reason}")
            raise SystemExit(f"avatard: {error}")
        # Only the workers accept.
        for port in binding.ports:
            port.stopReading()  # type: ignore[attr-defined]
        bound.append(BoundSocket(listener, binding.ports, binding.adopted))
    return bound


def childDescriptors(sockets: Sequence[BoundSocket], index: int) -> tuple[dict[int, int], list[int]]:
    """
    Where worker C{index} finds each of its sockets: one systemd passed
    at the descriptor systemd passed it as (a worker parses C{systemd:}
    descriptions as the twistd process did), the others after every
    descriptor systemd may have passed.

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
        mapping[number] = bound.fileno(index)
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
    backlog: C{backlog} is the one the description asked for (the
    default, L{DEFAULT_BACKLOG}, for a socket systemd passed).
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


class InheritedReactor(ListeningReactor):
    """
    A worker's reactor for one endpoint description: its listening socket
    is not bound but adopted from descriptor C{inherited}, whatever the
    description's parser asks for (C{listenTCP}, C{listenSSL},
    C{listenUNIX}); TLS is layered over it as C{listenSSL} would.  Sockets
    systemd passed (C{adoptStreamPort}) are adopted as the reactor does,
    UNIX ones as L{AdoptedUNIXPort}s.  Anything else is the reactor's own.
    """

    def __init__(self, reactor: Any, inherited: int) -> None:
        super().__init__(reactor)
        self._inherited = inherited

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
