"""
The factory of WHO connections: the limits they share, the count of them,
and their shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger

from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.protocol.connection import WhoProtocol
from avatard.protocol.idle import IdleTimer
from avatard.protocol.limits import Limits
from avatard.protocol.turns import NextTurn
from avatard.request.observe import IRequestObserver
from avatard.request.replies import BUSY
from avatard.request.responder import Responder

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.protocol.WhoFactory")


class BusyProtocol(Protocol):
    """
    Refuses a connection over a limit: C{ERR busy}, then close.
    """

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(BUSY)
        self.transport.loseConnection()


def _host(address: IAddress | None) -> str | None:
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address.host
    return None


if TYPE_CHECKING:
    _FactoryBase = ServerFactory[Protocol]
else:
    # Twisted before 26.4 has no generic factories.
    _FactoryBase = ServerFactory


class WhoFactory(_FactoryBase):
    """
    Builds L{WhoProtocol}s that share one L{Responder}, within L{Limits}.

    Connections opened and refused, and requests dropped at the shutdown
    deadline, are counted in C{counters} (by default the responder's).
    Refusals are reported once per episode (L{Episode}): one warning when
    they begin, one line when connections are accepted again, below 90% of
    the limit.

    @ivar connections: the connections open now.
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
    ) -> None:
        self.responder = responder
        self.clock = clock
        self.limits = Limits() if limits is None else limits
        self.counters = responder.counters if counters is None else counters
        self.observer = observer
        self.timer = timer
        self.connections: set[WhoProtocol] = set()
        self.perAddress: dict[str, int] = {}
        self.idle = IdleTimer(clock, self.limits.idleTimeout)
        self.turns = NextTurn(clock, self.limits.linesPerTurn, self.limits.spareLinesPerTurn)
        self._refusals = Episode()
        self._drained: Deferred[None] | None = None
        self._dropTimer: IDelayedCall | None = None

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        A L{WhoProtocol}, or a L{BusyProtocol} when a limit is reached.
        """
        peer = _host(addr)
        limits = self.limits
        if len(self.connections) >= limits.maxConnections or (
            limits.maxPerAddress and peer is not None and self.perAddress.get(peer, 0) >= limits.maxPerAddress
        ):
            return self._refuse(peer)
        protocol = WhoProtocol(self, peer)
        protocol.factory = self
        return protocol

    def _refuse(self, host: str | None) -> Protocol:
        if self._refusals.failure():
            _log.warn(
                "Refusing connections with ERR busy: {open} open (limit {limit}), "
                "{fromHost} from {host} (limit {perAddress}).",
                open=len(self.connections),
                limit=self.limits.maxConnections,
                fromHost=self.perAddress.get(host, 0) if host else 0,
                host=host,
                perAddress=self.limits.maxPerAddress or "none",
            )
        self.counters.connectionsRefused += 1
        self.responder.countUnread("busy")
        protocol = BusyProtocol()
        protocol.factory = self
        return protocol

    def connectionOpened(self, connection: WhoProtocol) -> None:
        """
        Count a connection that has opened.
        """
        self.connections.add(connection)
        counters = self.counters
        counters.connectionsOpened += 1
        counters.connectionsOpen += 1
        if self.limits.maxPerAddress and connection.peerHost is not None:
            self.perAddress[connection.peerHost] = self.perAddress.get(connection.peerHost, 0) + 1

    def connectionClosed(self, connection: WhoProtocol) -> None:
        """
        Forget a connection that has closed.
        """
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.counters.connectionsOpen -= 1
        host = connection.peerHost
        if self.limits.maxPerAddress and host is not None:
            left = self.perAddress[host] - 1
            if left:
                self.perAddress[host] = left
            else:
                del self.perAddress[host]
        if self._refusals.failing and len(self.connections) < self.limits.maxConnections * 0.9:
            # Hysteresis: under sustained overload, one line, not one per connection.
            refused = self._refusals.success()
            _log.info("Accepting connections again ({count} refused meanwhile).", count=refused)
        if not self.connections and self._drained is not None:
            if self._dropTimer is not None and self._dropTimer.active():
                self._dropTimer.cancel()
            self._dropTimer = None
            drained, self._drained = self._drained, None
            drained.callback(None)

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Finish every open connection: each answers what it has read, then
        closes.  Connections still open after C{timeout} seconds are dropped.

        @return: a L{Deferred} that fires once no connection is open.
        """
        for connection in list(self.connections):
            connection.finish()
        if not self.connections:
            return succeed(None)
        self._drained = Deferred()
        self._dropTimer = self.clock.callLater(timeout, self._dropAll, timeout)
        return self._drained

    def _dropAll(self, timeout: float) -> None:
        self._dropTimer = None
        unanswered = sum(connection.unanswered() for connection in self.connections)
        self.counters.requestsDropped += unanswered
        _log.warn(
            "Dropping {count} connections still open {timeout} s into the shutdown, "
            "with {unanswered} requests unanswered.",
            count=len(self.connections),
            timeout=timeout,
            unanswered=unanswered,
        )
        for connection in list(self.connections):
            transport = connection.transport
            abort = getattr(transport, "abortConnection", None)
            if abort is not None:
                abort()
            elif transport is not None:
                transport.loseConnection()
        # Do not wait on the transports to report the loss: the shutdown goes on.
        if self._drained is not None:
            drained, self._drained = self._drained, None
            drained.callback(None)
