"""
A cap on the connections a listener serves at once; the others wait.

Unlike a limit that refuses connections over it, a cap makes them wait:
while C{limit} connections are being served, the listening port stops
accepting, so new clients wait in the kernel's listen queue; connections
accepted in the same burst (a port accepts many at once) wait unread
until one of the served ones closes.  What they cost the reactor is thus
bounded by C{limit}, however many arrive at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory, IPushProducer, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy


@implementer(ITransport)
class _AdmittedProtocol(Protocol):
    """
    Wraps a protocol of the capped factory's, and connects it only once
    admitted.  It is the wrapped protocol's transport: what it asks of its
    transport goes to the real one.
    """

    factory: CappedFactory
    admitted = False

    def __init__(self, wrapped: IProtocol) -> None:
        self.wrapped = wrapped

    def makeConnection(self, transport: ITransport) -> None:
        directlyProvides(self, providedBy(transport))
        super().makeConnection(transport)
        self.factory.arrived(self)

    def admit(self) -> None:
        """
        Serve this connection now.
        """
        self.admitted = True
        self.wrapped.makeConnection(self)

    def dataReceived(self, data: bytes) -> None:
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.left(self)
        if self.admitted:
            self.wrapped.connectionLost(reason)

    def write(self, data: bytes) -> None:
        self._real().write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self._real().writeSequence(data)

    def loseConnection(self) -> None:
        self._real().loseConnection()

    def getPeer(self) -> IAddress:
        return self._real().getPeer()

    def getHost(self) -> IAddress:
        return self._real().getHost()

    def _real(self) -> ITransport:
        assert self.transport is not None
        return self.transport

    def __getattr__(self, name: str) -> Any:
        # What else the wrapped protocol asks of its transport.
        return getattr(self.transport, name)


@implementer(IProtocolFactory)
class CappedFactory:
    """
    Builds C{wrapped}'s protocols, and serves at most C{limit} of their
    connections at once: see the module docstring.

    @ivar port: the listening port, as a producer that stops and resumes
        accepting; set once it listens (until then, the cap holds by
        leaving connections unread only).
    @ivar served: the connections served now.
    @ivar waiting: connections accepted that wait, unread, oldest first.
    """

    def __init__(self, wrapped: IProtocolFactory, limit: int) -> None:
        self.wrapped = wrapped
        self.limit = limit
        self.port: IPushProducer | None = None
        self.served = 0
        self.waiting: deque[_AdmittedProtocol] = deque()
        self._accepting = True

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def logPrefix(self) -> str:
        logPrefix = getattr(self.wrapped, "logPrefix", None)
        return str(logPrefix()) if logPrefix is not None else self.wrapped.__class__.__name__

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        wrapped = self.wrapped.buildProtocol(addr)
        if wrapped is None:
            return None
        protocol = _AdmittedProtocol(wrapped)
        protocol.factory = self
        return protocol

    def arrived(self, protocol: _AdmittedProtocol) -> None:
        """
        A connection was accepted: serve it, or make it wait.
        """
        if self.served < self.limit:
            self.served += 1
            protocol.admit()
        else:
            assert protocol.transport is not None
            IPushProducer(protocol.transport).pauseProducing()
            self.waiting.append(protocol)
        self._pace()

    def left(self, protocol: _AdmittedProtocol) -> None:
        """
        A connection closed: let the oldest waiting one in, if any.
        """
        if not protocol.admitted:
            self.waiting.remove(protocol)
            return
        self.served -= 1
        while self.waiting and self.served < self.limit:
            waiting = self.waiting.popleft()
            self.served += 1
            assert waiting.transport is not None
            IPushProducer(waiting.transport).resumeProducing()
            waiting.admit()
        self._pace()

    def _pace(self) -> None:
        if self.port is None:
            return
        full = self.served >= self.limit
        if full and self._accepting:
            self._accepting = False
            self.port.pauseProducing()
        elif not full and not self._accepting:
            self._accepting = True
            self.port.resumeProducing()

    def listening(self, port: object) -> None:
        """
        The factory's port listens: it stops accepting while the cap is
        reached, when it can (ports that are producers, as TCP and UNIX
        ones are).
        """
        self.port = IPushProducer(port, None)
        self._accepting = True
        self._pace()
