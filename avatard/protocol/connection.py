"""
One client's connection to the WHO line protocol (the contract is
docs/PROTOCOL.md).

Requests are lines ending in LF or CRLF; every request gets exactly one
reply line ending in CRLF, in request order, whatever order the lookups
behind them complete in.  What each request means is the responder's
business; this module owns the connection: order, flow control and
closing (the framing is L{avatard.protocol.framing}'s).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol as TypingProtocol
from typing import cast

from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.python.failure import Failure

from avatard.addresses import describeAddress
from avatard.protocol.flow import PENDING, UNSENT, SendWatch, WriteBufferWatch
from avatard.protocol.framing import ANSWERING, CLOSED, FINISHING, LOST, READING, FramedLines
from avatard.protocol.idle import IdleTimer
from avatard.protocol.limits import Limits
from avatard.protocol.linger import closeLingering
from avatard.protocol.turns import NextTurn
from avatard.rates import Bucket
from avatard.request.observe import IRequestObserver, ObservedResponder, Respond, commandOf
from avatard.request.replies import BYE, RATE_LIMITED, TIMEOUT, TOO_LONG
from avatard.request.responder import Responder


class Host(TypingProtocol):
    """
    What a connection needs of the factory that made it, and shares with
    the other connections of that factory.
    """

    responder: Responder
    observer: IRequestObserver | None
    timer: Callable[[], float]
    clock: IReactorTime
    limits: Limits
    idle: IdleTimer
    turns: NextTurn

    def connectionOpened(self, connection: WhoProtocol) -> None:
        """
        Count C{connection}, which has opened.
        """

    def connectionClosed(self, connection: WhoProtocol) -> None:
        """
        Forget C{connection}, which has closed.
        """


UNSENT_LIMIT = 64 * 1024
"""
Bytes of replies a connection lets wait unsent in its transport, because
the client does not read them, before it stops reading requests; reading
resumes once they are sent.  Twisted's transports pause a streaming
producer at the same size.
"""


class _Pending:
    """
    A reply slot, kept in request order until its bytes are known.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data


class WhoProtocol(FramedLines):
    """
    Serves one client.

    A connection is L{State.READING} until C{QUIT}, a line too long, an
    idle timeout, the end of the client's input, a transport that can send
    no more, or the start of a shutdown: then L{State.ANSWERING}, reading
    no further request, writing every reply owed; then L{State.CLOSED};
    and L{State.LOST} once the transport reports the connection gone.  At
    a shutdown, a connection whose reading is paused first answers the
    complete requests it has read (L{State.FINISHING}).

    Its requests are split from what the client sends by
    L{FramedLines}, a L{LineReceiver} that frames in linear time.

    Replies whose lookups complete early wait in a queue behind earlier
    ones.  Reading stops (L{pauseReading}) while the client owes us
    reading (too many replies are pending, or more than C{unsentLimit}
    bytes of replies wait unsent in the transport), and while the
    connection waits for its next share of the reactor's turns
    (L{avatard.protocol.turns}); it resumes when that is over.

    The end of the client's input is handled as a half-close
    (L{IHalfCloseableProtocol}) only while the connection still owes the
    client something: a reply, an unterminated last line to answer, or
    bytes the transport has not sent yet.  Otherwise the transport closes
    at once, as for any protocol, without a further turn of the event loop.
    The protocol decides through C{__conform__}, the hook that adapting it
    to L{IHalfCloseableProtocol} consults, which is how TCP transports ask.

    With a bucket (C{--rate-limit}: its client's), the tokens for the
    requests of one read are taken together (L{FramedLines}), at the time
    that read arrived; only when the bucket holds fewer is each request
    checked (L{_refuses}), and those past the budget are answered
    C{ERR rate-limit}, in their place among the replies, without a
    lookup.  C{QUIT} takes no token.  A connection holds no tokens between
    reads: it has nothing to give back when it closes.

    The idle timer is lazy: a read only notes the time, and the timer, when
    it fires, waits again for what is left of the timeout if the client sent
    something meanwhile.  The factory's L{IdleTimer} keeps the timers of all
    its connections on one delayed call.

    @ivar state: where the connection is in its life.
    @ivar inputEnded: whether the client has ended its input.
    """

    unsentLimit: float = UNSENT_LIMIT

    # What every connection starts with, kept on the class: a short
    # connection's life costs little more than its requests.
    inputEnded = False
    _observed: ObservedResponder | None = None
    _linger: IDelayedCall | None = None
    # Bytes written to the transport since it last reported all sent.
    _unsent = 0
    _sendWatched = True

    def __init__(self, host: Host, peerHost: str | None = None, bucket: Bucket | None = None) -> None:
        self.host = host
        self.peerHost = peerHost
        if bucket is not None:
            self._bucket = bucket
        self._rationed = False
        self._queue: deque[_Pending] = deque()
        self._pauses: set[str] = set()
        # Replies answered at once while several lines of one read are
        # answered, written together when the read is done.
        self._batch: list[bytes] = []

    def connectionMade(self) -> None:
        assert self.transport is not None
        transport: ITransport = self.transport
        self._transport = transport
        host = self.host
        host.connectionOpened(self)
        # Chosen once per connection: without an observer, requests go
        # straight to the responder, at no cost per request.
        self._respond: Respond = host.responder.respond
        if host.observer is not None:
            self._observed = ObservedResponder(
                self._respond, describeAddress(transport.getPeer()), host.observer, host.timer
            )
            self._respond = self._observed.respond
        self.limits = host.limits
        self.turns = host.turns
        self._seconds = host.clock.seconds
        self._idle = host.idle
        self._lastRead = now = self._seconds()
        self._idle.watch(self, now + self.limits.idleTimeout)
        consumer = cast(IConsumer, transport)
        if ISSLTransport.providedBy(transport):
            # It tells us when its buffer is full, but not when all is sent:
            # its producer pauses reading, not a count of unsent bytes.
            self._sendWatched = False
            self.unsentLimit = math.inf
            consumer.registerProducer(WriteBufferWatch(self.pauseReading, self.resumeReading), True)
        else:
            consumer.registerProducer(SendWatch(self.allSent), False)

    def __conform__(self, interface: object) -> WhoProtocol | None:
        """
        Adapt to L{IHalfCloseableProtocol} only while the end of the
        client's input leaves something to do: see the class docstring.
        """
        if interface is IHalfCloseableProtocol and (
            self._unsent or self._queue or self._unread or self._batch or not self._sendWatched
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
        self.state = LOST
        self._queue.clear()
        self._idle.forget(self)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self.host.connectionClosed(self)

    def unanswered(self) -> int:
        """
        @return: how many requests read are owed a reply not written yet
            (the reply of a line too long, or of a timeout, is no request's).
        """
        return sum(1 for slot in self._queue if slot.data is not TOO_LONG and slot.data is not TIMEOUT)

    def lineReceived(self, line: bytes) -> None:
        """
        Answer one request line; called only while the connection reads
        (L{FramedLines} and L{_endInput} make sure of it).
        """
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.limits.maxLine:
            self.lineLengthExceeded(line)
            return
        reply = self._overBudget(line) if self._rationed and self._refuses(line) else self._respond(line)
        if reply is BYE:
            self.state = ANSWERING
            if self._bucket is not None and not self._rationed:
                # QUIT took a token with the others of its read: not its own.
                self._bucket.giveBack(1)
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
            if self.state is ANSWERING:
                self._close()
            return
        slot = _Pending()
        self._queue.append(slot)
        reply.addCallback(self._fill, slot)
        if len(self._queue) > self.limits.maxPending and self.state is READING:
            self.pauseReading(PENDING)

    def _refuses(self, line: bytes) -> bool:
        """
        Whether a request is past the budget, once the tokens taken for its
        read fall short; if not, it uses one (C{QUIT} none).
        """
        return not _isQuit(line) and not self._admit()

    def _overBudget(self, line: bytes) -> bytes:
        """
        Answer a request past the budget: counted, observed, no lookup.
        """
        self.host.responder.counters.requests[commandOf(line), "rate-limit"] += 1
        if self._observed is not None:
            self._observed.answeredAtOnce(line, RATE_LIMITED)
        return RATE_LIMITED

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        if self.state.reading:
            self.host.responder.countUnread("too-long")
            if self._observed is not None:
                self._observed.tooLong(line[: self.limits.maxLine], TOO_LONG)
        self._stopWith(TOO_LONG)

    def _waitIdle(self, delay: float) -> None:
        self._idle.watch(self, self._seconds() + delay)

    def idleTimerFired(self) -> None:
        """
        The idle timer's deadline has passed: time out, unless the client
        sent something meanwhile.
        """
        timeout = self.limits.idleTimeout
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
            self._waitIdle(self.limits.idleTimeout)
        elif self.state.reading:
            self.host.responder.countUnread("timeout")
            self._stopWith(TIMEOUT)

    def readConnectionLost(self) -> None:
        """
        The client closed its sending side: an unterminated last line is
        still a request; answer everything, then close.
        """
        self.inputEnded = True
        if self.state is CLOSED:
            # The end of a lingering close: the client has read our last
            # reply and closed its side too.
            self._transport.loseConnection()
            return
        self._endInput()

    def writeConnectionLost(self) -> None:
        """
        Nothing more can reach the client: stop.
        """
        if self.state.reading:
            self.state = ANSWERING
        self._close()

    def finish(self) -> None:
        """
        Read no further request; close once every reply owed is written.

        Complete requests already read but held back by a pause are
        answered too (an unterminated last line is not a request yet).
        """
        if self.state is READING and self.paused:
            self.state = FINISHING
            self.paused = False
            self.dataReceived(b"")
        if self.state.reading:
            self.state = ANSWERING
        self._flush()

    def pauseReading(self, reason: str) -> None:
        """
        Stop reading requests until L{resumeReading} is called for every
        C{reason} given here.  (While L{FINISHING}, nothing pauses: every
        request read is answered.)
        """
        if not self._pauses and self.state is not LOST and self.state is not FINISHING:
            self.pauseProducing()
        self._pauses.add(reason)

    def resumeReading(self, reason: str) -> None:
        """
        Resume reading, unless another reason to pause remains.
        """
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.state is READING:
            # LineReceiver's resumeProducing goes on with the lines buffered.
            self.resumeProducing()
            if self.inputEnded and not self.paused:
                self._endInput()

    def _endInput(self) -> None:
        if self.paused and self.state.reading:
            # Lines still buffered behind a pause: resumeReading comes back.
            return
        rest = self.clearLineBuffer()
        if rest and self.state.reading:
            if self._bucket is None:
                self.lineReceived(rest)
            else:
                # A request of its own, outside any read's.
                rationed, granted = self._rationed, self._granted
                self._rationed = False
                self._take(1)
                try:
                    self.lineReceived(rest)
                finally:
                    self._rationed, self._granted = rationed, granted
        self.finish()

    def _stopWith(self, reply: bytes) -> None:
        if not self.state.reading:
            return
        self.state = ANSWERING
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
            if self.state is not LOST:
                self._transport.writeSequence(self._batch)
            self._batch = []

    def _flush(self) -> None:
        if self.state is LOST:
            return
        self._writeBatch()
        queue = self._queue
        if queue and queue[0].data is not None:
            ready: list[bytes] = []
            size = 0
            while queue and (data := queue[0].data) is not None:
                queue.popleft()
                ready.append(data)
                size += len(data)
            self._unsent += size
            self._transport.writeSequence(ready)
            if self._unsent > self.unsentLimit:
                self.pauseReading(UNSENT)
            if len(queue) <= self.limits.maxPending // 2:
                self.resumeReading(PENDING)
        if self.state is ANSWERING and not queue:
            self._close()

    def _close(self) -> None:
        """
        Close once every reply is written, lingering while the client may
        still be sending (L{closeLingering}).
        """
        if self.state is CLOSED or self.state is LOST:
            return
        self._writeBatch()
        self.state = CLOSED
        self._idle.forget(self)
        transport = self._transport
        # A registered, paused producer would hold the close back.
        cast(IConsumer, transport).unregisterProducer()
        self._linger = closeLingering(transport, self.host.clock, self.inputEnded)


def _isQuit(line: bytes) -> bool:
    """
    @return: whether a request line is C{QUIT}, which ends the connection.
    """
    try:
        words = line.decode("utf-8").split()
    except UnicodeDecodeError:
        return False
    return len(words) == 1 and words[0].upper() == "QUIT"
