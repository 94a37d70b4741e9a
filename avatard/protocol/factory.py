"""
The factory of WHO connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory

from avatard.counters import Counters
from avatard.protocol.connection import WhoProtocol
from avatard.protocol.connections import BUSY as _BUSY
from avatard.protocol.connections import Connections, peerHostOf, refusedProtocol
from avatard.protocol.idle import IdleTimer
from avatard.protocol.limits import Limits
from avatard.protocol.turns import NextTurn
from avatard.request.observe import IRequestObserver
from avatard.request.replies import BUSY, DENIED
from avatard.request.responder import Responder

if TYPE_CHECKING:
    _FactoryBase = ServerFactory[Protocol]
else:
    # Twisted before 26.4 has no generic factories.
    _FactoryBase = ServerFactory


class WhoFactory(_FactoryBase):
    """
    Builds L{WhoProtocol}s that share one L{Responder}, within the limits
    of C{connections}: the connections of every front-end of the daemon,
    which a client over a limit finds full (L{BusyProtocol}), and a client
    from outside C{--allow} closed to it (L{DeniedProtocol}).

    @ivar connections: every front-end's connections open now.
    @ivar observer: told about every request, or L{None}, at no cost per
        request.
    @ivar timer: the clock requests are timed with for the observer, in
        seconds.
    """

    noisy = False

    def __init__(
        self,
        responder: Responder,
        clock: IReactorTime,
        limits: Limits | None = None,
        counters: Counters | None = None,
        observer: IRequestObserver | None = None,
        timer: Callable[[], float] = time.perf_counter,
        connections: Connections | None = None,
    ) -> None:
        """
        @param connections: the connections this factory's count among;
            by default its own, within C{limits}, counted in C{counters}
            (by default the responder's).
        """
        self.responder = responder
        self.clock = clock
        if connections is None:
            connections = Connections(
                clock,
                Limits() if limits is None else limits,
                responder.counters if counters is None else counters,
            )
        self.connections = connections
        self.limits = connections.limits
        self.counters = connections.counters
        self.observer = observer
        self.timer = timer
        self.idle = IdleTimer(clock, self.limits.idleTimeout)
        self.turns = NextTurn(clock, self.limits.linesPerTurn, self.limits.spareLinesPerTurn)

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        A L{WhoProtocol}, with the bucket of its client's requests; a
        L{DeniedProtocol} for a client outside C{--allow}; a
        L{BusyProtocol} when a limit is reached.
        """
        peer = peerHostOf(addr)
        connections = self.connections
        refusal = connections.refusal(peer)
        if refusal is not None:
            if refusal is _BUSY:
                self.responder.countUnread("busy")
            refused = refusedProtocol(refusal, self.clock, DENIED, BUSY)
            refused.factory = self
            return refused
        buckets = connections.buckets
        protocol = WhoProtocol(self, peer, None if buckets is None else buckets.of(peer))
        protocol.factory = self
        return protocol

    def connectionOpened(self, connection: WhoProtocol) -> None:
        """
        Count a connection that has opened.
        """
        self.connections.opened(connection)

    def connectionClosed(self, connection: WhoProtocol) -> None:
        """
        Forget a connection that has closed.
        """
        self.connections.closed(connection)

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Finish every open connection (L{Connections.drain}).
        """
        return self.connections.drain(timeout)
