"""
Framing: requests split from what a client sends, in linear time, a share
of the reactor's turn at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from twisted.protocols.basic import LineReceiver

from avatard.protocol.flow import TURN
from avatard.protocol.limits import Limits
from avatard.protocol.turns import NextTurn
from avatard.rates import Bucket


class State(Enum):
    """
    Where a connection is in its life, and whether it reads requests then.
    """

    READING = ("reading requests and answering them", True)
    FINISHING = ("answering every complete request read, whatever the limits (shutdown)", True)
    ANSWERING = ("reading nothing more; writing the replies owed, then closing", False)
    CLOSED = ("every reply written; the close has begun", False)
    LOST = ("the connection is gone", False)

    def __init__(self, meaning: str, reading: bool) -> None:
        self.meaning = meaning
        self.reading = reading


# The states as module names: reaching a member through its Enum class
# costs several times more, on the path of every request.
READING = State.READING
FINISHING = State.FINISHING
ANSWERING = State.ANSWERING
CLOSED = State.CLOSED
LOST = State.LOST


class FramedLines(LineReceiver):
    """
    A L{LineReceiver} whose C{dataReceived} splits lines itself, with its
    own buffer (C{_unread}) and re-entrance guard (C{_receiving}), and
    hands each to C{lineReceived}.

    L{LineReceiver.dataReceived} copies the rest of its buffer for every
    line, quadratic in the lines of one write; this walks the buffer with
    an index, in time proportional to what a client sent.  A read holding
    exactly one request, the usual case, skips the general split.  Lines
    are split only while the connection is reading (L{State}), not paused,
    and within its share of the reactor's turn (L{NextTurn.share}): then
    it stops reading (C{pauseReading(TURN)}) until the next turn.  The
    replies answered at once for the lines of one read are gathered
    (C{_batching}) and written together (C{_writeBatch}).  With a bucket
    of tokens (C{_bucket}, its client's), the tokens of the
    lines of a read are taken at once before they are answered; when the
    bucket holds fewer, C{_rationed} is set while they are answered, and
    each line is admitted on its own (L{_admit}) while the tokens taken
    (C{_granted}) last.  Tokens taken for lines left unanswered go back
    to the bucket (L{_settle}).

    The connection built on it provides what it needs: C{limits},
    C{turns}, C{_seconds} (its clock's), and
    the methods C{pauseReading}, C{resumeReading}, C{lineReceived},
    C{lineLengthExceeded} and C{_writeBatch}.

    @ivar state: where the connection is in its life.
    """

    delimiter = b"\n"
    state = READING
    _unread = b""
    _receiving = False
    _batching = False
    _lastRead = 0.0
    limits: Limits
    turns: NextTurn
    _seconds: Callable[[], float]
    _bucket: Bucket | None = None
    _rationed = False
    _granted = 0

    def pauseReading(self, reason: str) -> None:
        raise NotImplementedError()

    def resumeReading(self, reason: str) -> None:
        raise NotImplementedError()

    def _writeBatch(self) -> None:
        raise NotImplementedError()

    def dataReceived(self, data: bytes) -> None:
        """
        Split what arrived into lines and answer them, until a pause, or
        until the connection's share of this turn of the reactor is used
        (L{NextTurn.share}): then it stops reading until the next turn, so
        that one client pipelining thousands of requests cannot keep the
        others waiting for all of them.  (At shutdown, every request read
        is answered at once.)
        """
        if not self.state.reading:
            return
        if data:
            self._lastRead = self._seconds()
        if self._receiving:
            # Called back from within the loop below (by resumeProducing).
            self._unread += data
            return
        if data and not self._unread and not self.paused and data.find(b"\n") == len(data) - 1:
            # The usual read: one whole request, nothing held back.
            bucket = self._bucket
            if bucket is not None:
                # Its one token, taken as Bucket.take would, without the call.
                rate = bucket.rate
                now = self._lastRead
                full = bucket.full
                if full < now:
                    full = now
                full += rate.interval
                if full - now <= rate.horizon:
                    bucket.full = full
                else:
                    # None to grant: the line is refused, unless it is QUIT.
                    self._rationed = True
            self._receiving = True
            try:
                self.lineReceived(data[:-1])
            finally:
                self._receiving = False
                if self._rationed:
                    self._rationed = False
            if not self.state.reading:
                self._unread = b""
            return
        buffer = self._unread + data if self._unread else data
        self._unread = b""
        self._receiving = True
        self._batching = True
        # How many lines to answer now: all of a read within the
        # connection's own share (the usual pipeline, counted at no cost
        # per line), else what the turn allows it.
        lines = buffer.count(b"\n")
        finishing = self.state is FINISHING
        shared = lines > self.limits.linesPerTurn and not finishing
        allowed = min(lines, self.turns.share()) if shared else lines
        answered = start = 0
        bucket = self._bucket
        if bucket is not None:
            self._take(allowed)
        try:
            find = buffer.find
            while answered < allowed and not self.paused and self.state.reading:
                end = find(b"\n", start)
                line = buffer[start:end]
                start = end + 1
                answered += 1
                self.lineReceived(line)
        finally:
            self._receiving = False
            self._batching = False
            if bucket is not None and (self._rationed or answered < allowed):
                self._settle(allowed - answered)
            self._writeBatch()
        if shared:
            self.turns.took(answered)
            if answered == allowed < lines and not self.paused and self.state is READING:
                # Let the other connections run; resume on the next turn.
                self.pauseReading(TURN)
                self.turns.later(self._nextTurn)
        if not self.state.reading:
            self._unread = b""
            return
        self._unread = buffer[start:] + self._unread
        if not self.paused and len(self._unread) > self.limits.maxLine + 1:
            # No line ending yet, and too long already even for CRLF.
            self.lineLengthExceeded(self._unread)

    def _take(self, count: int) -> None:
        """
        Take the tokens of C{count} lines from the bucket, at the time of
        the last read; when it holds fewer, ration the lines to those
        taken (C{_rationed}, C{_granted}).
        """
        assert self._bucket is not None
        granted = self._bucket.take(count, self._lastRead)
        if granted < count:
            self._rationed = True
            self._granted = granted

    def _admit(self) -> bool:
        """
        @return: whether one more line of a rationed read is within the
            tokens taken for it; if so, it uses one.
        """
        if self._granted:
            self._granted -= 1
            return True
        return False

    def _settle(self, unanswered: int) -> None:
        """
        The lines of a read are answered, but for C{unanswered} of them:
        the tokens taken for those go back to the bucket, and a rationed
        read gives back what it did not use.
        """
        assert self._bucket is not None
        if self._rationed:
            self._rationed = False
            unanswered, self._granted = self._granted, 0
        if unanswered:
            self._bucket.giveBack(unanswered)

    def clearLineBuffer(self) -> bytes:
        """
        Clear what was received and not split into lines yet.

        @return: what was cleared.
        """
        unread, self._unread = self._unread, b""
        return unread

    def _nextTurn(self) -> None:
        self.resumeReading(TURN)
