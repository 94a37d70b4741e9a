"""
What each request line means, and its reply.

A L{Responder} turns one request line into one reply line, at once or
through a lookup that is bounded in time.  It knows nothing of connections;
L{avatard.protocol} keeps replies in order and owns the connection.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard.avatar import Avatar, loginProblem, terminalSafe
from avatard.interfaces import IAvatarStore, IImmediateLookup, IRenderer, IReplyCache, WouldBlock

CRLF = b"\r\n"
PONG = b"OK pong\r\n"
BYE = b"OK bye\r\n"
HELP = b"OK commands: WHO <login>, PING, HELP, QUIT\r\n"
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

DEFAULT_QUERY_TIMEOUT = 3.0
"""
Seconds a lookup may take before its request is answered C{ERR unavailable}.
"""


REPORT_INTERVAL = 10.0
"""
Seconds after reporting an episode of database failures during which a new
episode is counted but not reported yet.
"""


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
        self._commands: dict[str, Callable[[list[str]], bytes | Deferred[bytes]]] = {
            "PING": self._simple(PONG),
            "HELP": self._simple(HELP),
            "QUIT": self._simple(BYE),
        }

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
                return reply
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return NOT_UTF8
        words = text.split()
        if not words:
            return EMPTY
        name = words[0].upper()
        if name == "WHO":
            return self._who(words[1:], line)
        command = self._commands.get(name)
        if command is None:
            return UNKNOWN
        return command(words[1:])

    def _simple(self, reply: bytes) -> Callable[[list[str]], bytes]:
        def command(arguments: list[str]) -> bytes:
            return NO_ARGUMENT if arguments else reply

        return command

    def _who(self, arguments: list[str], line: bytes) -> bytes | Deferred[bytes]:
        if len(arguments) != 1:
            return WHO_USAGE
        login = arguments[0]
        cache = self.cache
        problem = loginProblem(login)
        if problem is not None:
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
        else:
            reply = b"OK " + terminalSafe(self.renderer.render(avatar)).encode("utf-8") + CRLF
        if self.cache is not None:
            self.cache.put(line, reply, avatar is not None, stamp)
        return reply

    def _failed(self, failure: Failure) -> bytes:
        self._failures += 1
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
