"""
Connections that HAProxy passes on with a PROXY header (C{haproxy:}
endpoints): each is served as a connection from the client the header
names.

Twisted's own C{haproxy:} wrapper builds the protocol it wraps when the
connection is accepted, from HAProxy's address: every per-client rule
(C{--max-per-ip}, and whatever a factory decides in C{buildProtocol})
would see one client, HAProxy.  Nor does it pass on a client's
half-close, and under C{haproxy:ssl:} it expects the header inside TLS,
where HAProxy sends it before.  Here instead:

 - a connection is only taken from a sender in C{--proxy-from}
   (L{ProxyHeaders.senders}): anyone else could claim any address; it is
   closed at once, without a byte sent;
 - the header is read (L{avatard.protocol.proxyheader}), within the idle
   timeout; a connection that does not start with a valid one is closed
   without a reply;
 - only then is the wrapped factory's C{buildProtocol} called, with the
   client's address, and the protocol connected; what followed the header
   is passed on.  Its transport's C{getPeer} is the client's address too;
 - the end of the client's input reaches the protocol as a half-close,
   when it wants one (L{IHalfCloseableProtocol}), as on plain TCP.

The wrapper sits right on the TCP connection, under TLS
(L{listenWithProxyHeaders} wraps every factory a listener is given, the
TLS one included): HAProxy sends the header before the TLS handshake.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from avatard.addresses import describeAddress
from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.networks import LOOPBACK, Networks
from avatard.protocol.idle import IdleTimer
from avatard.protocol.listening import ListeningReactor
from avatard.protocol.proxyheader import ProxyHeader, ProxyHeaderError, readHeader

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.protocol.WhoFactory")

PREFIX = "haproxy"
"""
The endpoint type whose connections carry a PROXY header, as Twisted
names it: C{haproxy:tcp:8787}.
"""

REPORT_INTERVAL = 60.0
"""
Seconds after a report before another episode of refused connections is
reported: a port the Internet scans writes a line a minute at most.
"""


BELIEVED = 64
"""
Sender addresses remembered as in C{--proxy-from}, at most: more than
HAProxy hosts a node has.
"""


def proxiedDescription(description: str) -> str | None:
    """
    @return: the endpoint description a C{haproxy:} description wraps
        (C{tcp:8787} for C{haproxy:tcp:8787}), as written; L{None} for a
        description of another type.
    """
    kind, _, rest = description.partition(":")
    return rest if kind.lower() == PREFIX else None


class ProxyHeaders:
    """
    What every C{haproxy:} listener of the daemon shares: whom it believes
    a PROXY header from, how long a header may take, where refusals are
    counted and reported.

    Refusals are counted in C{counters}: L{Counters.proxyRefused}, a
    sender outside L{senders}; L{Counters.proxyInvalid}, a connection
    without a valid header in time.  Each kind is reported once per
    episode (L{Episode}), which a connection with a valid header from a
    sender in L{senders} ends.

    @ivar senders: the networks a PROXY header is believed from:
        C{--proxy-from}, loopback by default.
    @ivar idle: the timer of headers still awaited.
    """

    def __init__(
        self,
        clock: IReactorTime,
        counters: Counters,
        timeout: float,
        senders: Networks = LOOPBACK,
    ) -> None:
        self.clock = clock
        self.counters = counters
        self.timeout = timeout
        self.senders = senders
        self.idle = IdleTimer(clock, timeout)
        self._refused = Episode(clock, REPORT_INTERVAL)
        self._invalid = Episode(clock, REPORT_INTERVAL)
        self._believed: set[str] = set()

    def admits(self, sender: IAddress | None) -> bool:
        """
        @param sender: who connected: HAProxy, if all is well.
        @return: whether its PROXY header is to be believed: an IP address
            in L{senders}, or a UNIX socket's client (file permissions
            decide who may connect to one).  If not, it is counted and
            reported.
        """
        if not isinstance(sender, (IPv4Address, IPv6Address)):
            return True
        host = sender.host
        if host in self._believed:
            return True
        if host in self.senders:
            # HAProxy connects from one address or a few: matching it once
            # against the networks is enough.
            if len(self._believed) >= BELIEVED:
                self._believed.clear()
            self._believed.add(host)
            return True
        self.counters.proxyRefused += 1
        if self._refused.failure():
            _log.warn(
                "Refusing connections to a haproxy: port from {sender}, outside --proxy-from "
                "({senders}): they are closed without a reply.",
                sender=describeAddress(sender),
                senders=str(self.senders),
            )
        return False

    def invalid(self, sender: IAddress, problem: str) -> None:
        """
        Count a connection from C{sender} closed without a valid header
        (C{problem} says why), and report it once per episode.
        """
        self.counters.proxyInvalid += 1
        if self._invalid.failure():
            _log.warn(
                "Closing connections to a haproxy: port without a valid PROXY header "
                "(from {sender}: {problem}); is HAProxy sending it (send-proxy-v2)?",
                sender=describeAddress(sender),
                problem=problem,
            )

    def accepted(self) -> None:
        """
        A connection came with a valid header, from a sender believed:
        refusals so far were an episode, now over.
        """
        for episode, what in (
            (self._refused, "from outside --proxy-from"),
            (self._invalid, "without a header"),
        ):
            count = episode.success()
            if count is not None:
                _log.info(
                    "PROXY headers read again ({count} connections {what} refused meanwhile).",
                    count=count,
                    what=what,
                )


class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Reads a connection's PROXY header, then builds the protocol of the
    client it names and serves as that protocol's transport, whose
    C{getPeer} is the client.

    @ivar header: the header, once read.
    """

    factory: ProxyHeaderFactory
    # None until the header is read.
    wrappedProtocol: IProtocol | None  # type: ignore[assignment]
    header: ProxyHeader | None = None
    _closed = False

    def __init__(self, factory: ProxyHeaderFactory) -> None:
        super().__init__(factory, None)  # type: ignore[arg-type]
        self._buffer = bytearray()

    def logPrefix(self) -> str:
        return self.factory.logPrefix()

    def makeConnection(self, transport: ITransport) -> None:
        directlyProvides(self, providedBy(transport))
        self.transport = transport
        self.connected = 1
        self.factory.registerProtocol(self)
        headers = self.factory.headers
        headers.idle.watch(self, headers.clock.seconds() + headers.timeout)

    def __conform__(self, interface: object) -> object:
        """
        Adapt to L{IHalfCloseableProtocol} as the protocol served does,
        when there is one: the end of the client's input reaches it as a
        half-close when it wants one, as on plain TCP.  Before the header,
        the end of the input closes the connection.
        """
        protocol = self.wrappedProtocol
        if interface is not IHalfCloseableProtocol or protocol is None:
            return None
        # As IHalfCloseableProtocol(protocol, None) would, but without the
        # instance's own attributes: a protocol that wraps another (TLS)
        # passes unknown ones to its transport, this wrapper, and asking it
        # would come back here.
        conform = getattr(type(protocol), "__conform__", None)
        if conform is not None:
            adapted = conform(protocol, interface)
            if adapted is not None:
                return adapted
        return protocol if IHalfCloseableProtocol.providedBy(protocol) else None

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        buffer = self._buffer
        buffer += data
        try:
            header = readHeader(buffer)
        except ProxyHeaderError as e:
            self._refuse(str(e))
            return
        if header is not None:
            self._serve(header, bytes(buffer[header.length :]))

    def closeWaiting(self) -> None:
        """
        The listener has stopped: close the connection if it is still
        waiting for its header (one being served finishes as its protocol
        says).
        """
        if self.header is None and not self._closed:
            self._closed = True
            assert self.transport is not None
            self.transport.loseConnection()

    def idleTimerFired(self) -> None:
        """
        No whole header came in time.
        """
        if self.header is None and not self._closed:
            self._refuse("no whole PROXY header within the idle timeout")

    def _refuse(self, problem: str) -> None:
        self._closed = True
        self._buffer = bytearray()
        assert self.transport is not None
        self.factory.headers.invalid(self.transport.getPeer(), problem)
        self.transport.loseConnection()

    def _serve(self, header: ProxyHeader, rest: bytes) -> None:
        headers = self.factory.headers
        headers.idle.forget(self)
        headers.accepted()
        self.header = header
        self._buffer = bytearray()
        protocol = self.factory.wrappedFactory.buildProtocol(self.getPeer())
        if protocol is None:
            self._closed = True
            assert self.transport is not None
            self.transport.loseConnection()
            return
        self.wrappedProtocol = protocol
        # From now on the transport hands what it reads straight to the
        # protocol: serving through the wrapper costs no call per read.
        self.dataReceived = protocol.dataReceived  # type: ignore[method-assign]
        protocol.makeConnection(self)
        if rest and not self.disconnecting:
            protocol.dataReceived(rest)

    def getPeer(self) -> IAddress:
        """
        @return: the client the header names; the sender's own address
            before the header, or when it names none.
        """
        if self.header is not None and self.header.source is not None:
            return self.header.source
        assert self.transport is not None
        return self.transport.getPeer()

    def getHost(self) -> IAddress:
        """
        @return: the address the client connected to, as the header says;
            the sender's connection's otherwise.
        """
        if self.header is not None and self.header.destination is not None:
            return self.header.destination
        assert self.transport is not None
        return self.transport.getHost()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._closed = True
        self.factory.headers.idle.forget(self)
        self.factory.unregisterProtocol(self)
        protocol, self.wrappedProtocol = self.wrappedProtocol, None
        self.__dict__.pop("dataReceived", None)
        if protocol is not None:
            protocol.connectionLost(reason)


class ProxyHeaderFactory(WrappingFactory):
    """
    Serves C{wrappedFactory}'s protocols over connections that begin with
    a PROXY header (L{ProxyHeaderProtocol}), from senders C{headers}
    believes.
    """

    noisy = False
    protocol = ProxyHeaderProtocol

    def __init__(self, wrappedFactory: IProtocolFactory, headers: ProxyHeaders) -> None:
        super().__init__(wrappedFactory)
        self.headers = headers

    def logPrefix(self) -> str:
        wrapped = self.wrappedFactory
        prefix = wrapped.logPrefix() if hasattr(wrapped, "logPrefix") else type(wrapped).__name__
        return f"{prefix} (PROXY)"

    def stopFactory(self) -> None:
        """
        The listener has stopped (the daemon is stopping): connections
        still waiting for their header are closed, as they would be
        without a reply; those served are finished with the others of
        their front-end.
        """
        for protocol in list(self.protocols):
            protocol.closeWaiting()

    def buildProtocol(self, addr: IAddress | None) -> ProxyHeaderProtocol | None:  # type: ignore[override]
        """
        @return: a L{ProxyHeaderProtocol}, or L{None} (the connection is
            closed at once) for a sender L{ProxyHeaders.admits} refuses.
        """
        if not self.headers.admits(addr):
            return None
        return self.protocol(self)


class _ProxiedReactor(ListeningReactor):
    """
    A reactor whose stream listeners read a PROXY header on every
    connection (L{ProxyHeaderFactory}), before any TLS (C{listenSSL} goes
    through C{listenTCP}); anything else is the reactor's own.
    """

    def __init__(self, reactor: Any, headers: ProxyHeaders) -> None:
        super().__init__(reactor)
        self._headers = headers

    def _wrap(self, factory: IProtocolFactory) -> ProxyHeaderFactory:
        return ProxyHeaderFactory(factory, self._headers)

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        listening: IListeningPort = self._reactor.listenTCP(port, self._wrap(factory), backlog, interface)
        return listening

    def listenUNIX(
        self, address: str, factory: IProtocolFactory, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> IListeningPort:
        listening: IListeningPort = self._reactor.listenUNIX(
            address, self._wrap(factory), backlog, mode, wantPID
        )
        return listening

    def adoptStreamPort(
        self, fileDescriptor: int, addressFamily: Any, factory: IProtocolFactory
    ) -> IListeningPort:
        listening: IListeningPort = self._reactor.adoptStreamPort(
            fileDescriptor, addressFamily, self._wrap(factory)
        )
        return listening


def listenWithProxyHeaders(reactor: Any, headers: ProxyHeaders) -> Any:
    """
    @return: a reactor to parse the endpoint description a C{haproxy:}
        description wraps with (L{proxiedDescription}): its listeners
        (TCP, UNIX, inherited from systemd, TLS over TCP) read a PROXY
        header first on every connection, as C{headers} says; everything
        else is C{reactor}'s.
    """
    return _ProxiedReactor(reactor, headers)
