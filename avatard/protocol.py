"""
Connections of the WHO line protocol (the contract is docs/PROTOCOL.md).

Requests are lines ending in LF or CRLF; every request gets exactly one
reply line ending in CRLF, in request order, whatever order the lookups
behind them complete in.  What each request means is L{Responder}'s
business; this module owns connections: order, limits, flow control and
closing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPullProducer,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.idle import IdleTimer
from avatard.limits import Limits
from avatard.request.observe import IRequestObserver, ObservedResponder, Respond, describePeer
from avatard.request.replies import BUSY, BYE, TIMEOUT, TOO_LONG
from avatard.request.responder import Responder
from avatard.turns import NextTurn

LINGER = 2.0
"""
Seconds a closing connection goes on reading, and discarding, what its
client still sends, so that the replies already sent reach it.
"""

UNSENT_LIMIT = 64 * 1024
"""
Bytes of replies a connection lets wait unsent in its transport, because
the client does not read them, before it stops reading requests; reading
resumes once they are sent.  Twisted's transports pause a streaming
producer at the same size.
"""

# Reasons to stop reading from a client.
PENDING = "pending replies"
UNSENT = "unsent replies"
TURN = "its share of the turn is used"


class _Pending:
    """
    A reply slot, kept in request order until its bytes are known.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data


@implementer(IPullProducer)
class _SendWatch:
    """
    Registered with the transport as a pull producer.  A transport asks its
    pull producer for more each time it has sent everything it was given
    (L{IConsumer.registerProducer}): that is how the connection learns that
    none of its replies wait unsent.
    """

    __slots__ = ("resumeProducing",)

    def __init__(self, allSent: Callable[[], None]) -> None:
        # Called for every write the transport completes: one call, not two.
        self.resumeProducing = allSent

    def stopProducing(self) -> None:
        pass


@implementer(IPushProducer)
class _WriteBufferWatch:
    """
    Registered with a TLS transport as a streaming producer, so that the
    transport tells us when a client does not read its replies fast enough.
    (TLS would drive a pull producer with a loop of calls.)
    """

    def __init__(self, protocol: WhoProtocol) -> None:
        self.protocol = protocol

    def pauseProducing(self) -> None:
        self.protocol.pauseReading(UNSENT)

    def resumeProducing(self) -> None:
        self.protocol.resumeReading(UNSENT)

    def stopProducing(self) -> None:
        pass


class WhoProtocol(LineReceiver):
    """
    Serves one client.

    Replies whose lookups complete early wait in a queue behind earlier ones.
    Reading stops while the client owes us reading (too many replies are
    pending, or more than C{unsentLimit} bytes of replies wait unsent in
    the transport) and resumes when that drains.  After C{QUIT}, a too-long
    line, an idle timeout, the end of the client's input or the start of a
    shutdown, no further request is read; every reply owed is written, then
    the connection is closed.

    The end of the client's input is handled as a half-close
    (L{IHalfCloseableProtocol}) only while the connection still owes the
    client something: a reply, an unterminated last line to answer, or
    bytes the transport has not sent yet.  Otherwise the transport closes
    at once, as for any protocol, without a further turn of the event loop.
    The protocol decides through C{__conform__}, the hook that adapting it
    to L{IHalfCloseableProtocol} consults, which is how TCP transports ask.

    The idle timer is lazy: a read only notes the time, and the timer, when
    it fires, waits again for what is left of the timeout if the client sent
    something meanwhile.  Resetting a timer for every read would cost each
    request more than the timer is worth.  The factory's L{IdleTimer} keeps
    the timers of all its connections on one delayed call.
    """

    delimiter = b"\n"
    factory: WhoFactory
    unsentLimit: float = UNSENT_LIMIT

    # The state every connection starts in, kept on the class: a short
    # connection's life costs little more than its requests.
    _closing = False
    _closed = False
    _finishing = False
    _linger: IDelayedCall | None = None
    _inputEnded = False
    _lost = False
    _observed: ObservedResponder | None = None
    _lastRead = 0.0
    _batching = False
    # Bytes written to the transport since it last reported all sent.
    _unsent = 0
    _sendWatched = True

    def __init__(self, peerHost: str | None = None) -> None:
        self.peerHost = peerHost
        self._queue: deque[_Pending] = deque()
        self._pauses: set[str] = set()
        # Replies answered at once while several lines of one read are
        # answered, written together when the read is done.
        self._batch: list[bytes] = []

    def connectionMade(self) -> None:
        assert self.transport is not None
        self._transport: ITransport = self.transport
        factory = self.factory
        factory.connectionOpened(self)
        # Chosen once per connection: without an observer, requests go
        # straight to the responder, at no cost per request.
        self._respond: Respond = factory.responder.respond
        if factory.observer is not None:
            self._observed = ObservedResponder(
                self._respond, describePeer(self._transport.getPeer()), factory.observer, factory.timer
            )
            self._respond = self._observed.respond
        self._seconds = factory.clock.seconds
        self._idle = factory.idle
        self._lastRead = now = self._seconds()
        self._idle.watch(self, now + factory.limits.idleTimeout)
        if ISSLTransport.providedBy(self._transport):
            # It tells us when its buffer is full, but not when all is sent:
            # its producer pauses reading, not a count of unsent bytes.
            self._sendWatched = False
            self.unsentLimit = math.inf
            self._transport.registerProducer(_WriteBufferWatch(self), True)  # type: ignore[attr-defined]
        else:
            self._transport.registerProducer(_SendWatch(self.allSent), False)  # type: ignore[attr-defined]

    def __conform__(self, interface: object) -> WhoProtocol | None:
        """
        Adapt to L{IHalfCloseableProtocol} only while the end of the
        client's input leaves something to do: see the class docstring.
        """
        if interface is IHalfCloseableProtocol and (
            self._unsent or self._queue or self._buffer or self._batch or not self._sendWatched
        ):
            return self
        return None

    def allSent(self) -> None:
        """
        The transport has sent every reply written to it.
        """
        self._unsent = 0
        if self._pauses:
            self.resumeReading(UNSENT)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._lost = True
        self._queue.clear()
        self._idle.forget(self)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self.factory.connectionClosed(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Split what arrived into lines and answer them, until a pause, or
        until the connection's share of this turn of the reactor is used
        (L{NextTurn.share}): then it stops reading until the next turn, so
        that one client pipelining thousands of requests cannot keep the
        others waiting for all of them.  (At shutdown, every request read
        is answered at once.)

        Unlike L{LineReceiver.dataReceived}, which copies the rest of its
        buffer for every line (quadratic in the lines of one write), this
        walks the buffer with an index: a client pipelining thousands of
        requests in one write costs time in proportion to what it sent.
        The replies answered at once for the lines of one read are written
        together, with one C{writeSequence}, when the read is done.
        """
        if self._closing:
            return
        if data:
            self._lastRead = self._seconds()
        if self._busyReceiving:
            # Called back from within the loop below (by resumeProducing).
            self._buffer += data
            return
        if data and not self._buffer and not self.paused and data.find(b"\n") == len(data) - 1:
            # The usual read: one whole request, nothing held back.
            self._busyReceiving = True
            try:
                self.lineReceived(data[:-1])
            finally:
                self._busyReceiving = False
            if self._closing:
                self._buffer = b""
            return
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        self._busyReceiving = True
        self._batching = True
        try:
            start = 0
            find = buffer.find
            turns = self.factory.turns
            share = given = turns.share()
            while not self.paused and not self._closing:
                end = find(b"\n", start)
                if end < 0:
                    break
                if not share and not self._finishing:
                    # Let the other connections run; resume on the next turn.
                    self.pauseReading(TURN)
                    turns.later(self._nextTurn)
                    break
                share -= 1
                line = buffer[start:end]
                start = end + 1
                self.lineReceived(line)
        finally:
            self._busyReceiving = False
            self._batching = False
            self._writeBatch()
        turns.took(given - share)
        if self._closing:
            self._buffer = b""
            return
        self._buffer = buffer[start:] + self._buffer
        if not self.paused and len(self._buffer) > self.factory.limits.maxLine + 1:
            # No line ending yet, and too long already even for CRLF.
            self.lineLengthExceeded(self._buffer)

    def unanswered(self) -> int:
        """
        @return: how many requests read are owed a reply not written yet
            (the reply of a line too long, or of a timeout, is no request's).
        """
        return sum(1 for slot in self._queue if slot.data is not TOO_LONG and slot.data is not TIMEOUT)

    def _nextTurn(self) -> None:
        self.resumeReading(TURN)

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.factory.limits.maxLine:
            self.lineLengthExceeded(line)
            return
        reply = self._respond(line)
        if reply is BYE:
            self._closing = True
        if isinstance(reply, bytes):
            if self._queue:
                self._queue.append(_Pending(reply))
                self._flush()
                return
            # Counted before it is written: a transport may report it sent
            # from within the write.
            self._unsent += len(reply)
            if self._batching:
                self._batch.append(reply)
            else:
                self._transport.write(reply)
            if self._unsent > self.unsentLimit:
                self.pauseReading(UNSENT)
            if self._closing:
                self._close()
            return
        slot = _Pending()
        self._queue.append(slot)
        reply.addCallback(self._fill, slot)
        if len(self._queue) > self.factory.limits.maxPending and not self._finishing:
            self.pauseReading(PENDING)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        if not self._closing:
            self.factory.responder.countUnread("too-long")
            if self._observed is not None:
                self._observed.tooLong(line[: self.factory.limits.maxLine], TOO_LONG)
        self._stopWith(TOO_LONG)

    def _waitIdle(self, delay: float) -> None:
        self._idle.watch(self, self._seconds() + delay)

    def idleTimerFired(self) -> None:
        """
        The idle timer's deadline has passed: time out, unless the client
        sent something meanwhile.
        """
        timeout = self.factory.limits.idleTimeout
        quiet = self._seconds() - self._lastRead
        if quiet < timeout:
            self._waitIdle(timeout - quiet)
        else:
            self.timeoutConnection()

    def timeoutConnection(self) -> None:
        """
        The client sent nothing for the idle timeout.  A connection that is
        still owed replies, or whose replies wait for the client to read
        them, is not idle: wait.
        """
        if self._queue or UNSENT in self._pauses:
            self._waitIdle(self.factory.limits.idleTimeout)
        elif not self._closing:
            self.factory.responder.countUnread("timeout")
            self._stopWith(TIMEOUT)

    def readConnectionLost(self) -> None:
        """
        The client closed its sending side: an unterminated last line is
        still a request; answer everything, then close.
        """
        self._inputEnded = True
        if self._closed:
            # The end of a lingering close: the client has read our last
            # reply and closed its side too.
            self._transport.loseConnection()
            return
        self._endInput()

    def writeConnectionLost(self) -> None:
        """
        Nothing more can reach the client: stop.
        """
        self._closing = True
        self._close()

    def finish(self) -> None:
        """
        Read no further request; close once every reply owed is written.

        Complete requests already read but held back by a pause are
        answered too (an unterminated last line is not a request yet).
        """
        if not self._closing and self.paused and not self._lost:
            self._finishing = True
            self.paused = False
            self.dataReceived(b"")
        self._closing = True
        self._flush()

    def pauseReading(self, reason: str) -> None:
        """
        Stop reading requests until L{resumeReading} is called for every
        C{reason} given here.
        """
        if not self._pauses and not self._lost:
            self.pauseProducing()
        self._pauses.add(reason)

    def resumeReading(self, reason: str) -> None:
        """
        Resume reading, unless another reason to pause remains.
        """
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and not self._lost and not self._closing:
            # LineReceiver goes on with the lines it has buffered.
            self.resumeProducing()
            if self._inputEnded and not self.paused:
                self._endInput()

    def _endInput(self) -> None:
        if self.paused and not self._closing:
            # Lines still buffered behind a pause: resumeReading comes back.
            return
        rest = self.clearLineBuffer()
        if rest and not self._closing:
            self.lineReceived(rest)
        self.finish()

    def _stopWith(self, reply: bytes) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.append(_Pending(reply))
        self._flush()

    def _fill(self, data: bytes, slot: _Pending) -> None:
        slot.data = data
        self._flush()

    def _writeBatch(self) -> None:
        """
        Write the replies gathered so far, ahead of anything later.
        """
        if self._batch:
            if not self._lost:
                self._transport.writeSequence(self._batch)
            self._batch = []

    def _flush(self) -> None:
        if self._lost:
            return
        self._writeBatch()
        queue = self._queue
        if queue and queue[0].data is not None:
            ready: list[bytes] = []
            size = 0
            while queue and queue[0].data is not None:
                data: bytes = queue.popleft().data  # type: ignore[assignment]
                ready.append(data)
                size += len(data)
            self._unsent += size
            self._transport.writeSequence(ready)
            if self._unsent > self.unsentLimit:
                self.pauseReading(UNSENT)
            if len(queue) <= self.factory.limits.maxPending // 2:
                self.resumeReading(PENDING)
        if self._closing and not queue:
            self._close()

    def _close(self) -> None:
        """
        Close once every reply is written.

        While the client may still be sending (after C{QUIT}, a too-long
        line, a timeout, at shutdown), closing outright would leave its
        unread bytes in the kernel, which then answers the close with a
        reset that destroys replies not yet received.  So the close lingers,
        as Apache's does: shut down our sending side after the last reply,
        read and discard what the client still sends until it closes too, or
        for at most L{LINGER} seconds.
        """
        if self._closed:
            return
        self._writeBatch()
        self._closed = True
        self._idle.forget(self)
        # A registered, paused producer would hold the close back.
        self._transport.unregisterProducer()  # type: ignore[attr-defined]
        loseWriteConnection = getattr(self._transport, "loseWriteConnection", None)
        # A TLS transport passes loseWriteConnection through to the TCP
        # connection under it, which would cut off replies still inside the
        # TLS layer: it closes with its own loseConnection, which sends them
        # and then the TLS close alert.
        if self._inputEnded or loseWriteConnection is None or ISSLTransport.providedBy(self._transport):
            self._transport.loseConnection()
            return
        self._transport.resumeProducing()  # type: ignore[attr-defined]
        loseWriteConnection()
        self._linger = self.factory.clock.callLater(LINGER, self._transport.loseConnection)


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
    _log = Logger()

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
        host = _host(addr)
        limits = self.limits
        if len(self.connections) >= limits.maxConnections or (
            limits.maxPerAddress and host is not None and self.perAddress.get(host, 0) >= limits.maxPerAddress
        ):
            return self._refuse(host)
        protocol = WhoProtocol(host)
        protocol.factory = self
        return protocol

    def _refuse(self, host: str | None) -> Protocol:
        if self._refusals.failure():
            self._log.warn(
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
            self._log.info("Accepting connections again ({count} refused meanwhile).", count=refused)
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
        self._log.warn(
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
