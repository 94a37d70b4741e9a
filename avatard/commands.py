"""
What each request line means, and its reply.

A L{Responder} turns one request line into one reply line, at once or
through a lookup that is bounded in time.  It knows nothing of connections;
L{avatard.protocol} keeps replies in order and owns the connection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard.interfaces import IAvatarStore, IImmediateLookup, IRenderer, IReplyCache, WouldBlock
from avatard.model import Avatar, loginProblem
from avatard.text import terminalSafe

CRLF = b"\r\n"
PONG = b"OK pong\r\n"
BYE = b"OK bye\r\n"
HELP = b"OK commands: WHO <login>, PING, STATS, HELP, QUIT\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"
TOO_LONG = b"ERR too-long request line too long, closing\r\n"
TIMEOUT = b"ERR timeout idle for too long, closing\r\n"
BUSY = b"ERR busy too many connections, retry later\r\n"
NOT_UTF8 = b"ERR bad-request request is not valid UTF-8\r\n"
EMPTY = b"ERR bad-request empty request, try HELP\r\n"
UNKNOWN = b"ERR bad-request unknown command, try HELP\r\n"
WHO_USAGE = b"ERR bad-request usage: WHO <login>\r\n"
NO_ARGUMENT = b"ERR bad-request this command takes no argument\r\n"

COMMANDS = ("WHO", "PING", "STATS", "HELP", "QUIT")
"""
The commands of the protocol, as they are counted and logged.
"""

NO_COMMAND = "-"
"""
How requests without a known command (empty, not UTF-8, unknown, too long)
are counted and logged: never by the word the client sent.
"""

RESULTS = ("ok", "not-found", "bad-request", "unavailable", "too-long", "timeout", "busy")
"""
The result of a request: C{ok}, or the code of its C{ERR} reply.
"""

_WHO_OK = ("WHO", "ok")
_WHO_NOT_FOUND = ("WHO", "not-found")
_WHO_BAD = ("WHO", "bad-request")
_WHO_UNAVAILABLE = ("WHO", "unavailable")
_NOTHING_BAD = (NO_COMMAND, "bad-request")

DEFAULT_QUERY_TIMEOUT = 3.0
"""
Seconds a lookup may take before its request is answered C{ERR unavailable}.
"""


REPORT_INTERVAL = 10.0
"""
Seconds after reporting an episode of database failures during which a new
episode is counted but not reported yet.
"""


def countsByResult(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    """
    @param counts: requests by C{(command, result)}.
    @return: requests by result, every one of L{RESULTS} present.
    """
    byResult = dict.fromkeys(RESULTS, 0)
    for (_, result), count in counts.items():
        byResult[result] += count
    return byResult


def badRequest(problem: str) -> bytes:
    """
    @return: an C{ERR bad-request} reply line explaining C{problem}.
    """
    return b"ERR bad-request " + terminalSafe(problem).encode("utf-8") + CRLF


class Responder:
    """
    Answers request lines.

    Lookups that fail or take longer than C{queryTimeout} seconds are
    answered C{ERR unavailable}.  Failures are logged once per episode, with
    their cause, and the recovery once, with how many lookups failed
    meanwhile: a database that is down does not flood the log.  An episode
    that starts within L{REPORT_INTERVAL} seconds of the last report is only
    counted, and reported if it is still going on once that interval is
    over.

    With a C{cache}, a C{WHO} whose reply is cached is answered from it at
    once, without a lookup, and every lookup that succeeds is cached.  The
    cache is keyed by the request line itself, so that a cached request is
    answered before it is even decoded: a line gives the same reply for as
    long as the data behind it stays the same.

    C{STATS} answers with what L{statistics} returns (by default only the
    request counts this responder keeps); the daemon sets it to a
    L{avatard.stats.Statistics} line covering connections, cache and pool.

    @ivar counts: requests answered, by C{(command, result)}, except C{WHO}
        requests answered from the cache, which the cache itself counts
        (see L{requestCounts}): the hot path adds no count of its own but
        one for cached C{not-found} replies.
    @ivar databaseErrors: lookups that failed or timed out, since start.
    """

    _log = Logger()

    def __init__(
        self,
        store: IAvatarStore,
        renderer: IRenderer,
        clock: IReactorTime,
        queryTimeout: float = DEFAULT_QUERY_TIMEOUT,
        cache: IReplyCache | None = None,
    ) -> None:
        self.store = store
        self._lookupNow = store.lookupNow if IImmediateLookup.providedBy(store) else None
        self.cache = cache
        self.renderer = renderer
        self.clock = clock
        self.queryTimeout = queryTimeout
        self._failing = False
        self._failures = 0
        self._episodeLogged = False
        self._lastReport: float | None = None
        self.counts: Counter[tuple[str, str]] = Counter()
        self.cachedNotFound = 0
        self.databaseErrors = 0
        self.statistics: Callable[[], str] = self._requestStatistics
        self._commands: dict[str, Callable[[list[str]], bytes | Deferred[bytes]]] = {
            "PING": self._simple("PING", lambda: PONG),
            "STATS": self._simple("STATS", self._stats),
            "HELP": self._simple("HELP", lambda: HELP),
            "QUIT": self._simple("QUIT", lambda: BYE),
        }

    def requestCounts(self) -> dict[tuple[str, str], int]:
        """
        @return: the requests answered so far, by C{(command, result)},
            every pair of L{COMMANDS} (and L{NO_COMMAND}) and L{RESULTS}
            that has occurred, those answered from the cache included.
        """
        counts = dict(self.counts)
        if self.cache is not None:
            hits = self.cache.hits
            counts[_WHO_OK] = counts.get(_WHO_OK, 0) + hits - self.cachedNotFound
            counts[_WHO_NOT_FOUND] = counts.get(_WHO_NOT_FOUND, 0) + self.cachedNotFound
        return {key: value for key, value in counts.items() if value}

    def _requestStatistics(self) -> str:
        byResult = countsByResult(self.requestCounts())
        return " ".join(f"requests.{result}={count}" for result, count in byResult.items())

    def _stats(self) -> bytes:
        return b"OK " + terminalSafe(self.statistics()).encode("utf-8") + CRLF

    def respond(self, line: bytes) -> bytes | Deferred[bytes]:
        """
        Answer one request line (without its line ending).

        @return: the reply line, or a L{Deferred} that fires with it within
            C{queryTimeout} seconds and never fails.
        """
        cache = self.cache
        if cache is not None:
            # Only the lines of lookups that succeeded are ever cached.
            reply = cache.get(line)
            if reply is not None:
                # The cache counts its hits; only the not-found ones are told apart here.
                if reply is NOT_FOUND:
                    self.cachedNotFound += 1
                return reply
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.counts[_NOTHING_BAD] += 1
            return NOT_UTF8
        words = text.split()
        if not words:
            self.counts[_NOTHING_BAD] += 1
            return EMPTY
        name = words[0].upper()
        if name == "WHO":
            return self._who(words[1:], line)
        command = self._commands.get(name)
        if command is None:
            self.counts[_NOTHING_BAD] += 1
            return UNKNOWN
        return command(words[1:])

    def countUnread(self, result: str) -> None:
        """
        Count a reply the connection sent without a request read: C{too-long}
        (a line too long to be read), C{timeout} or C{busy}.
        """
        self.counts[NO_COMMAND, result] += 1

    def _simple(self, name: str, reply: Callable[[], bytes]) -> Callable[[list[str]], bytes]:
        ok = (name, "ok")
        bad = (name, "bad-request")

        def command(arguments: list[str]) -> bytes:
            if arguments:
                self.counts[bad] += 1
                return NO_ARGUMENT
            self.counts[ok] += 1
            return reply()

        return command

    def _who(self, arguments: list[str], line: bytes) -> bytes | Deferred[bytes]:
        if len(arguments) != 1:
            self.counts[_WHO_BAD] += 1
            return WHO_USAGE
        login = arguments[0]
        cache = self.cache
        problem = loginProblem(login)
        if problem is not None:
            self.counts[_WHO_BAD] += 1
            return badRequest(problem)
        stamp = cache.stamp() if cache is not None else 0.0
        if self._lookupNow is not None:
            try:
                avatar = self._lookupNow(login)
            except WouldBlock:
                pass
            else:
                try:
                    return self._found(avatar, line, stamp)
                except Exception:
                    return self._failed(Failure())
        lookup = self.store.lookup(login)
        answered = lookup.called
        if not answered:
            lookup.addTimeout(self.queryTimeout, self.clock)
        # The errback also covers a renderer that raises: the reply is then
        # ERR unavailable too, and the error is logged.
        answer = lookup.addCallback(self._found, line, stamp).addErrback(self._failed)
        if answered:
            # Answered already (by a store that reads at once): return the
            # reply itself, which is written without a wait in line.
            replies: list[bytes] = []
            answer.addCallback(replies.append)
            return replies[0]
        return answer

    def _found(self, avatar: Avatar | None, line: bytes, stamp: float) -> bytes:
        if self._failing:
            self._failing = False
            if self._episodeLogged:
                self._log.info(
                    "The database answers again ({count} lookups failed meanwhile).",
                    count=self._failures,
                )
                self._failures = 0
        if avatar is None:
            reply = NOT_FOUND
            self.counts[_WHO_NOT_FOUND] += 1
        else:
            reply = b"OK " + terminalSafe(self.renderer.render(avatar)).encode("utf-8") + CRLF
            self.counts[_WHO_OK] += 1
        if self.cache is not None:
            self.cache.put(line, reply, avatar is not None, stamp)
        return reply

    def _failed(self, failure: Failure) -> bytes:
        self._failures += 1
        self.databaseErrors += 1
        self.counts[_WHO_UNAVAILABLE] += 1
        if not self._failing:
            self._failing = True
            self._episodeLogged = False
        now = self.clock.seconds()
        # An episode that starts soon after the last report is counted, and
        # reported only if it lasts: a database that flaps under load writes
        # a few lines a minute, not one per flap.
        if not self._episodeLogged and (
            self._lastReport is None or now - self._lastReport >= REPORT_INTERVAL
        ):
            self._episodeLogged = True
            self._lastReport = now
            if failure.check(TimeoutError):
                cause = f"no answer within {self.queryTimeout:g} s"
            else:
                cause = terminalSafe(failure.getErrorMessage() or repr(failure.value))
            self._log.error(
                "Database lookups fail, answering ERR unavailable until they work again: {cause}{earlier}",
                cause=cause,
                earlier=f" ({self._failures - 1} lookups failed since the last report)"
                if self._failures > 1
                else "",
            )
        return UNAVAILABLE
