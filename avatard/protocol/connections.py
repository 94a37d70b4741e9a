"""
The connections of every front-end: one limit for all of them, one count,
one shutdown.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.protocol.limits import Limits

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.protocol.WhoFactory")


class Tracked(TypingProtocol):
    """
    A connection, as L{Connections} keeps track of it.
    """

    peerHost: str | None

    @property
    def transport(self) -> ITransport | None:
        """
        The connection's transport, once connected.
        """

    def finish(self) -> None:
        """
        Answer what was read, then close: the daemon is stopping.
        """

    def unanswered(self) -> int:
        """
        @return: how many requests read are still owed a reply.
        """


class BusyProtocol(Protocol):
    """
    Refuses a connection over a limit: one line, C{reply} (the front-end's
    own, C{ERR busy ...} for the WHO protocol), then close.
    """

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.reply)
        self.transport.loseConnection()


def peerHostOf(address: IAddress | None) -> str | None:
    """
    @return: the IP address of a peer, which C{--max-per-ip} counts, or
        L{None} for a peer that has none (a UNIX socket's client).
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address.host
    return None


class Connections:
    """
    The connections open now on every listener of the daemon, whatever
    protocol they speak, within one set of L{Limits}: C{maxConnections} in
    all, C{maxPerAddress} from one IP address.

    Connections opened and refused, and requests dropped at the shutdown
    deadline, are counted in C{counters}.  Refusals are reported once per
    episode (L{Episode}): one warning when they begin, one line when
    connections are accepted again, below 90% of the limit.

    @ivar open: the connections open now.
    """

    def __init__(self, clock: IReactorTime, limits: Limits, counters: Counters) -> None:
        self.clock = clock
        self.limits = limits
        self.counters = counters
        self.open: set[Tracked] = set()
        self.perAddress: dict[str, int] = {}
        self._refusals = Episode()
        self._drained: Deferred[None] | None = None
        self._dropTimer: IDelayedCall | None = None

    def admits(self, peer: str | None) -> bool:
        """
        @param peer: the IP address of a client connecting, if it has one.
        @return: whether it may open one more connection; if not, it is
            counted as refused (and reported, once per episode).
        """
        limits = self.limits
        if len(self.open) < limits.maxConnections and not (
            limits.maxPerAddress and peer is not None and self.perAddress.get(peer, 0) >= limits.maxPerAddress
        ):
            return True
        if self._refusals.failure():
            _log.warn(
                "Refusing connections with ERR busy: {open} open (limit {limit}), "
                "{fromHost} from {host} (limit {perAddress}).",
                open=len(self.open),
                limit=limits.maxConnections,
                fromHost=self.perAddress.get(peer, 0) if peer else 0,
                host=peer,
                perAddress=limits.maxPerAddress or "none",
            )
        self.counters.connectionsRefused += 1
        return False

    def opened(self, connection: Tracked) -> None:
        """
        Count a connection that has opened.
        """
        self.open.add(connection)
        counters = self.counters
        counters.connectionsOpened += 1
        counters.connectionsOpen += 1
        if self.limits.maxPerAddress and connection.peerHost is not None:
            self.perAddress[connection.peerHost] = self.perAddress.get(connection.peerHost, 0) + 1

    def closed(self, connection: Tracked) -> None:
        """
        Forget a connection that has closed.
        """
        if connection not in self.open:
            return
        self.open.discard(connection)
        self.counters.connectionsOpen -= 1
        host = connection.peerHost
        if self.limits.maxPerAddress and host is not None:
            left = self.perAddress[host] - 1
            if left:
                self.perAddress[host] = left
            else:
                del self.perAddress[host]
        if self._refusals.failing and len(self.open) < self.limits.maxConnections * 0.9:
            # Hysteresis: under sustained overload, one line, not one per connection.
            refused = self._refusals.success()
            _log.info("Accepting connections again ({count} refused meanwhile).", count=refused)
        if not self.open and self._drained is not None:
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
        for connection in list(self.open):
            connection.finish()
        if not self.open:
            return succeed(None)
        self._drained = Deferred()
        self._dropTimer = self.clock.callLater(timeout, self._dropAll, timeout)
        return self._drained

    def _dropAll(self, timeout: float) -> None:
        self._dropTimer = None
        unanswered = sum(connection.unanswered() for connection in self.open)
        self.counters.requestsDropped += unanswered
        _log.warn(
            "Dropping {count} connections still open {timeout} s into the shutdown, "
            "with {unanswered} requests unanswered.",
            count=len(self.open),
            timeout=timeout,
            unanswered=unanswered,
        )
        for connection in list(self.open):
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
