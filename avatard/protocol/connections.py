"""
The connections of every front-end: who may connect (C{--allow}), one
limit for all of them, one count, the buckets of their clients
(C{--rate-limit}), one shutdown.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.protocol.limits import Limits
from avatard.protocol.linger import closeLingering
from avatard.rates import Buckets

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


BUSY = "busy"
"""
Why a connection over a limit is refused (L{Connections.refusal}).
"""

DENIED = "denied"
"""
Why a connection from outside C{--allow} is refused (L{Connections.refusal}).
"""

JUDGED = 4096
"""
Client addresses whose verdict (C{--allow}) each process remembers, the
least recently used forgotten first: a client that connects again is
judged without parsing its address again.
"""


DENIALS_QUIET = 60.0
"""
Seconds after a report of denied connections during which a new episode
of them is only counted: a directory reached by both allowed clients and
scanners logs a few lines an hour, not one per scan.
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


class DeniedProtocol(Protocol):
    """
    Refuses a connection from outside C{--allow}: one line, C{reply} (the
    front-end's own, C{ERR denied ...} for the WHO protocol), then close,
    reading nothing.

    The close lingers (L{closeLingering}): a client that sent its request
    as it connected (C{echo WHO yoen | nc}) would otherwise have its line
    destroyed by the reset the kernel answers unread input with.
    """

    _linger: IDelayedCall | None = None

    def __init__(self, reply: bytes, clock: IReactorTime) -> None:
        self.reply = reply
        self.clock = clock

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.reply)
        self._linger = closeLingering(self.transport, self.clock, False)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()


def refusedProtocol(refusal: str, clock: IReactorTime, denied: bytes, busy: bytes) -> Protocol:
    """
    @param refusal: why a connection is refused (L{Connections.refusal}).
    @param denied: the front-end's line for a client outside C{--allow}.
    @param busy: the front-end's line for a client over a limit.
    @return: what answers it: a L{DeniedProtocol} sending C{denied}, or a
        L{BusyProtocol} sending C{busy}.
    """
    if refusal is DENIED:
        return DeniedProtocol(denied, clock)
    return BusyProtocol(busy)


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

    Clients from outside C{limits.allow} are denied before any limit is
    looked at.  With C{limits.rate}, each client address (its
    L{clientKey}) has a bucket of tokens, which its connections take from
    (L{buckets}).

    Connections opened, refused and denied, and requests dropped at the
    shutdown deadline, are counted in C{counters}.  Refusals are reported
    once per episode (L{Episode}): one warning when they begin, one line
    when connections are accepted again, below 90% of the limit.  So are
    denials: one warning when they begin, one line at the next connection
    admitted, and no new report for L{DENIALS_QUIET} seconds after one.

    @ivar open: the connections open now.
    @ivar buckets: the buckets of clients' tokens, with C{limits.rate}
        (else L{None}): L{Buckets.of} gives the bucket a connection's
        requests take their tokens from, shared with the client's other
        connections (and those of its IPv6 /64).
    """

    def __init__(self, clock: IReactorTime, limits: Limits, counters: Counters) -> None:
        self.clock = clock
        self.limits = limits
        self.counters = counters
        self.open: set[Tracked] = set()
        self.perAddress: dict[str, int] = {}
        self.buckets = None if limits.rate is None else Buckets(limits.rate)
        self._allowed: Callable[[str], bool] | None = (
            None if limits.allow is None else lru_cache(JUDGED)(limits.allow.__contains__)
        )
        self._refusals = Episode()
        self._denials = Episode(clock, DENIALS_QUIET)
        self._drained: Deferred[None] | None = None
        self._dropTimer: IDelayedCall | None = None

    def refusal(self, peer: str | None) -> str | None:
        """
        @param peer: the IP address of a client connecting, if it has one.
        @return: L{None} if it may open one more connection; otherwise why
            not: L{DENIED} (outside C{--allow}) or L{BUSY} (a limit is
            reached); it is then counted (and reported, once per episode).
        """
        limits = self.limits
        allowed = self._allowed
        if allowed is not None and peer is not None:
            if not allowed(peer):
                self._deny(peer)
                return DENIED
            if self._denials.failing:
                denied = self._denials.success()
                if denied is not None:
                    _log.info("Admitting connections again ({count} denied meanwhile).", count=denied)
        if len(self.open) < limits.maxConnections and not (
            limits.maxPerAddress and peer is not None and self.perAddress.get(peer, 0) >= limits.maxPerAddress
        ):
            return None
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
        return BUSY

    def _deny(self, peer: str) -> None:
        self.counters.connectionsDenied += 1
        if self._denials.failure():
            _log.warn(
                "Denying connections with ERR denied, from addresses outside --allow "
                "(the first from {host}; allowed: {allow}).",
                host=peer,
                allow=str(self.limits.allow),
            )

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
