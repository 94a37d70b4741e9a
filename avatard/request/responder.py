"""
What each request line means, and its reply.

A L{Responder} turns one request line into one reply line, at once or
through a lookup that is bounded in time.  It knows nothing of connections;
L{avatard.protocol} keeps replies in order and owns the connection.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from avatard.counters import NO_COMMAND, Counters
from avatard.interfaces import IAvatarStore, IRenderer, IReplyCache
from avatard.request.formats import JSONFormat
from avatard.request.replies import (
    BYE,
    EMPTY,
    HELP,
    JSON_USAGE,
    NO_ARGUMENT,
    NOT_UTF8,
    PONG,
    UNKNOWN,
    WHO_USAGE,
    ok,
)
from avatard.request.who import DEFAULT_QUERY_TIMEOUT, WhoPath

_NOTHING_BAD = (NO_COMMAND, "bad-request")


class Responder:
    """
    Answers request lines.

    A line already answered from the database, and whose reply is still
    current, is answered from the cache before it is even decoded: a line
    gives the same reply for as long as the data behind it stays the same.
    Otherwise its first word picks the command, case-insensitively, from a
    table of C{do_<COMMAND>} methods (as C{twisted.mail.pop3} dispatches),
    each given the words after it; C{WHO} and C{JSON} go down the
    L{WhoPath}, each in its own reply format.

    C{STATS} answers with what C{statistics} returns: the daemon gives its
    L{avatard.ops.stats.Statistics} line, covering connections, cache and
    pool; by default, the request counts alone.

    Every request is counted in C{counters} (those answered from the cache,
    by the cache itself), by command and result.
    """

    def __init__(
        self,
        store: IAvatarStore,
        renderer: IRenderer,
        clock: IReactorTime,
        queryTimeout: float = DEFAULT_QUERY_TIMEOUT,
        cache: IReplyCache | None = None,
        counters: Counters | None = None,
        statistics: Callable[[], str] | None = None,
    ) -> None:
        self.counters = Counters() if counters is None else counters
        self.cache = cache
        self.whoPath = WhoPath(store, renderer, clock, queryTimeout, cache, self.counters)
        self._whoFormat = self.whoPath.whoFormat
        self._jsonFormat = JSONFormat()
        self.statistics = self._requestStatistics if statistics is None else statistics
        self._commands: dict[str, Callable[[list[str], bytes], bytes | Deferred[bytes]]] = {
            name[len("do_") :]: getattr(self, name) for name in dir(self) if name.startswith("do_")
        }

    def respond(self, line: bytes) -> bytes | Deferred[bytes]:
        """
        Answer one request line (without its line ending).

        @return: the reply line, or a L{Deferred} that fires with it within
            the query timeout and never fails.
        """
        cache = self.cache
        if cache is not None:
            # Only the lines of lookups that succeeded are ever cached.
            reply = cache.get(line)
            if reply is not None:
                # The cache counts its hits.
                return reply
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.counters.requests[_NOTHING_BAD] += 1
            return NOT_UTF8
        words = text.split()
        if not words:
            self.counters.requests[_NOTHING_BAD] += 1
            return EMPTY
        command = self._commands.get(words[0].upper())
        if command is None:
            self.counters.requests[_NOTHING_BAD] += 1
            return UNKNOWN
        return command(words[1:], line)

    def countUnread(self, result: str) -> None:
        """
        Count a reply the connection sent without a request read: C{too-long}
        (a line too long to be read), C{timeout} or C{busy}.
        """
        self.counters.requests[NO_COMMAND, result] += 1

    def do_WHO(self, arguments: list[str], line: bytes) -> bytes | Deferred[bytes]:
        """
        C{WHO <login>}: the user's avatar, or C{ERR not-found}.
        """
        if len(arguments) != 1:
            self.counters.requests["WHO", "bad-request"] += 1
            return WHO_USAGE
        return self.whoPath.lookup(self._whoFormat, arguments[0], line)

    def do_JSON(self, arguments: list[str], line: bytes) -> bytes | Deferred[bytes]:
        """
        C{JSON <login>}: the user as one JSON object, or C{ERR not-found}.
        """
        if len(arguments) != 1:
            self.counters.requests["JSON", "bad-request"] += 1
            return JSON_USAGE
        return self.whoPath.lookup(self._jsonFormat, arguments[0], line)

    def do_PING(self, arguments: list[str], line: bytes) -> bytes:
        """
        C{PING}: C{OK pong}.
        """
        return self._simple("PING", arguments) or PONG

    def do_STATS(self, arguments: list[str], line: bytes) -> bytes:
        """
        C{STATS}: the daemon's counters.
        """
        return self._simple("STATS", arguments) or ok(self.statistics())

    def do_HELP(self, arguments: list[str], line: bytes) -> bytes:
        """
        C{HELP}: the commands.
        """
        return self._simple("HELP", arguments) or HELP

    def do_QUIT(self, arguments: list[str], line: bytes) -> bytes:
        """
        C{QUIT}: C{OK bye}; the connection closes once it is written.
        """
        return self._simple("QUIT", arguments) or BYE

    def _simple(self, name: str, arguments: list[str]) -> bytes:
        """
        Count a command that takes no argument.

        @return: C{ERR bad-request} when it was given some, else nothing.
        """
        if arguments:
            self.counters.requests[name, "bad-request"] += 1
            return NO_ARGUMENT
        self.counters.requests[name, "ok"] += 1
        return b""

    def _requestStatistics(self) -> str:
        byResult = self.counters.requestsByResult()
        return " ".join(f"requests.{result}={count}" for result, count in byResult.items())
