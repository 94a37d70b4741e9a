"""
The finger front-end (RFC 1288): one query per connection, for the finger
clients every Unix already has.

A client sends one query line and reads the answer until the server
closes.  C{login} and C{/W login} (what C{finger -l} sends) answer the
text C{WHO login} renders, without C{OK }; every other outcome is one line
starting C{finger: } (docs/PROTOCOL.md lists them).  avatard never lists
its directory (RFC 1288 section 3.2.2 allows refusing for privacy) and
never forwards a query to another host (section 3.2.1: forwarding SHOULD
be disabled by default).  Everything sent goes through the same
terminal-safety as the WHO protocol's replies (section 3.3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IHalfCloseableProtocol, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.addresses import describeAddress
from avatard.counters import Counters
from avatard.interfaces import IRenderer, IReplyFormat
from avatard.model import Avatar, loginProblem
from avatard.protocol.connections import BUSY as _BUSY
from avatard.protocol.connections import Connections, peerHostOf, refusedProtocol
from avatard.protocol.idle import IdleTimer
from avatard.protocol.linger import closeLingering
from avatard.rates import Bucket
from avatard.request.observe import IRequestObserver
from avatard.request.who import WhoPath
from avatard.text import terminalSafe

COMMAND = "finger"
"""
The command finger queries are counted under (C{STATS} C{requests.finger},
C{/metrics} C{command="finger"}).
"""

LOGGED_COMMAND = "FINGER"
"""
The command the access log names finger queries with.
"""

NOT_FOUND = b"finger: no such user\r\n"
LISTING_REFUSED = b"finger: listing users is refused, ask for one login\r\n"
FORWARDING_REFUSED = b"finger: forwarding is refused\r\n"
UNAVAILABLE = b"finger: the directory cannot be read right now, retry later\r\n"
ONE_LOGIN = b"finger: ask for one login per query\r\n"
NOT_UTF8 = b"finger: query is not valid UTF-8\r\n"
TOO_LONG = b"finger: query too long\r\n"
TIMEOUT = b"finger: no query received in time\r\n"
BUSY = b"finger: too many connections, retry later\r\n"
DENIED = b"finger: not allowed from this address\r\n"
RATE_LIMITED = b"finger: too many queries, retry later\r\n"


def badLogin(problem: str) -> bytes:
    """
    @return: the line answering a login that breaks the rules: C{problem},
        made terminal-safe.
    """
    return b"finger: " + terminalSafe(problem).encode("utf-8") + b"\r\n"


def found(text: str) -> bytes:
    """
    @return: the answer for a user found: the text C{WHO} renders, made
        terminal-safe, as one line.
    """
    return terminalSafe(text).encode("utf-8") + b"\r\n"


Lookup = Callable[[str], "bytes | Deferred[bytes]"]
"""
Answers a login that passed the rules with a whole answer line: L{found}'s,
L{NOT_FOUND} or L{UNAVAILABLE}; a L{Deferred} of it never fails.
"""


CACHE_KEY = b"finger\n"
"""
What the reply cache keeps a finger answer under, before the login: no
request line of the WHO protocol holds C{\n}, so no key of one equals it.
"""


@implementer(IReplyFormat)
class FingerFormat:
    """
    Finger's answers on the lookup path: the text C{renderer} writes (what
    C{WHO} renders), without C{OK }; the fixed lines otherwise.
    """

    command = COMMAND
    notFound = NOT_FOUND
    unavailable = UNAVAILABLE

    def __init__(self, renderer: IRenderer) -> None:
        self.renderer = renderer

    def found(self, avatar: Avatar) -> bytes:
        return found(self.renderer.render(avatar))

    def badLogin(self, problem: str) -> bytes:
        return badLogin(problem)


def fingerLookup(path: WhoPath, renderer: IRenderer) -> Lookup:
    """
    @param path: the daemon's lookup path, whose cache, coalescing,
        timeouts and counters finger shares with C{WHO}.
    @return: a L{Lookup} that answers from the cache first, then through
        C{path}, in L{FingerFormat}.
    """
    replyFormat = FingerFormat(renderer)
    cache = path.cache

    def lookup(login: str) -> bytes | Deferred[bytes]:
        key = CACHE_KEY + login.encode("utf-8")
        if cache is not None:
            reply = cache.get(key)
            if reply is not None:
                return reply
        return path.lookup(replyFormat, login, key)

    return lookup


def resultOf(answer: bytes) -> str:
    """
    @return: the result of an answer line, as counted and logged.
    """
    if not answer.startswith(b"finger: "):
        return "ok"
    return _RESULTS.get(answer, "bad-request")


_RESULTS = {
    NOT_FOUND: "not-found",
    UNAVAILABLE: "unavailable",
    TOO_LONG: "too-long",
    TIMEOUT: "timeout",
    BUSY: "busy",
    RATE_LIMITED: "rate-limit",
}
"""
The results of the fixed answer lines other than C{bad-request}.
"""


def answerQuery(query: bytes, lookup: Lookup) -> bytes | Deferred[bytes]:
    """
    Answer one finger query (its line without the line ending).

    The query grammar is RFC 1288 section 2.3's: an optional C{/W} (verbose;
    every answer is the same), then a user name, then an optional C{@host}
    chain, which is a forwarding request.

    @param lookup: answers a login that passed the rules.
    @return: the answer line, or a L{Deferred} of it that never fails.
    """
    try:
        text = query.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8
    text = text.strip(" \t")
    if text[:2] in ("/W", "/w") and text[2:3] in ("", " ", "\t"):
        text = text[2:].lstrip(" \t")
    if not text:
        return LISTING_REFUSED
    if "@" in text:
        return FORWARDING_REFUSED
    if len(text.split()) > 1:
        return ONE_LOGIN
    problem = loginProblem(text)
    if problem is not None:
        return badLogin(problem)
    return lookup(text)


if TYPE_CHECKING:
    _FactoryBase = ServerFactory[Protocol]
else:
    # Twisted before 26.4 has no generic factories.
    _FactoryBase = ServerFactory


@implementer(IHalfCloseableProtocol)
class FingerProtocol(Protocol):
    """
    One finger connection: read one query line (ending in CRLF, or LF),
    answer it, close.

    A query longer than the limit, or none within the idle timeout, is
    answered with one line and the connection closed; whatever follows the
    query is read and discarded, until the connection closes (lingering,
    L{closeLingering}, so that a client still sending gets its answer).  A
    client that ends its input (half-closes) after its query is answered
    before the connection closes; a query cut short by the end of input is
    answered as if its line had ended.  With a C{bucket} (its client's,
    C{--rate-limit}), each query takes a token from it, and a query past
    the budget is answered L{RATE_LIMITED}, without a lookup.
    """

    def __init__(self, factory: FingerFactory, peerHost: str | None, bucket: Bucket | None = None) -> None:
        self.factory = factory
        self.peerHost = peerHost
        self.bucket = bucket
        self._buffer = b""
        self._query: bytes | None = None
        self._started = 0.0
        self._answered = False
        self._inputEnded = False
        self._lost = False
        self._linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        factory = self.factory
        factory.connections.opened(self)
        factory.idle.watch(self, factory.clock.seconds() + factory.connections.limits.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        if self._query is not None:
            # Read and discarded: only the first query is answered.
            return
        self._buffer += data
        end = self._buffer.find(b"\n")
        maxLine = self.factory.connections.limits.maxLine
        if end < 0:
            if len(self._buffer) > maxLine:
                self._ask(self._buffer[:maxLine], TOO_LONG)
            return
        line = self._buffer[:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > maxLine:
            self._ask(line[:maxLine], TOO_LONG)
            return
        self._ask(line)

    def _ask(self, query: bytes, refusal: bytes | None = None) -> None:
        """
        Answer C{query}, or, given a C{refusal}, answer that instead (a
        query too long, or none in time).
        """
        self._query = query
        self._buffer = b""
        self.factory.idle.forget(self)
        self._started = self.factory.timer()
        if (
            refusal is None
            and self.bucket is not None
            and self.bucket.take(1, self.factory.clock.seconds()) == 0
        ):
            refusal = RATE_LIMITED
        answer = answerQuery(query, self.factory.lookup) if refusal is None else refusal
        if isinstance(answer, Deferred):
            answer.addCallback(self._answer)
        else:
            self._answer(answer)

    def _answer(self, answer: bytes) -> None:
        assert self._query is not None
        self._answered = True
        result = resultOf(answer)
        factory = self.factory
        if result not in ("ok", "not-found", "unavailable"):
            # The lookup path counts what it answers; the rest is counted here.
            factory.counters.requests[COMMAND, result] += 1
        if factory.observer is not None:
            factory.observer.requestAnswered(
                self._peer(), LOGGED_COMMAND, result, self._query, factory.timer() - self._started
            )
        if not self._lost:
            assert self.transport is not None
            self.transport.write(answer)
            self._linger = closeLingering(self.transport, factory.clock, self._inputEnded)

    def _peer(self) -> str:
        assert self.transport is not None
        return describeAddress(self.transport.getPeer())

    def idleTimerFired(self) -> None:
        """
        No query came within the idle timeout.
        """
        if self._query is None and not self._lost:
            self._ask(b"", TIMEOUT)

    def readConnectionLost(self) -> None:
        """
        The client ended its input: answer a query it sent, even without
        its line ending; a client that sent nothing is let go.
        """
        self._inputEnded = True
        if self._query is not None:
            return
        if self._buffer:
            self._ask(self._buffer.rstrip(b"\r"))
            return
        assert self.transport is not None
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        The client reads no more: nothing it could be sent would arrive.
        """
        assert self.transport is not None
        self.transport.loseConnection()

    def finish(self) -> None:
        """
        The daemon stops: a connection waiting for its query closes now;
        one whose query is being answered closes once it is.
        """
        if self._query is None and self.transport is not None:
            self.transport.loseConnection()

    def unanswered(self) -> int:
        """
        @return: 1 while a query read waits for its answer, else 0.
        """
        return 1 if self._query is not None and not self._answered else 0

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self.factory.idle.forget(self)
        self.factory.connections.closed(self)


class FingerFactory(_FactoryBase):
    """
    Builds L{FingerProtocol}s that answer through C{lookup}, among the
    daemon's C{connections} (one limit for every front-end).

    @ivar observer: told about every query, or L{None}.
    @ivar timer: the clock queries are timed with for the observer.
    """

    noisy = False

    def __init__(
        self,
        lookup: Lookup,
        clock: IReactorTime,
        connections: Connections,
        observer: IRequestObserver | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.lookup = lookup
        self.clock = clock
        self.connections = connections
        self.counters: Counters = connections.counters
        self.observer = observer
        self.timer = timer
        self.idle = IdleTimer(clock, connections.limits.idleTimeout)

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        """
        A L{FingerProtocol}, with the bucket of its client's queries; a
        L{DeniedProtocol} sending L{DENIED} to a client outside C{--allow};
        a L{BusyProtocol} sending L{BUSY} when a limit is reached.
        """
        peer = peerHostOf(addr)
        connections = self.connections
        refusal = connections.refusal(peer)
        if refusal is not None:
            if refusal is _BUSY:
                self.counters.requests[COMMAND, "busy"] += 1
            refused = refusedProtocol(refusal, self.clock, DENIED, BUSY)
            refused.factory = self
            return refused
        buckets = connections.buckets
        protocol = FingerProtocol(self, peer, None if buckets is None else buckets.of(peer))
        protocol.factory = self
        return protocol

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Finish every open connection (L{Connections.drain}).
        """
        return self.connections.drain(timeout)
