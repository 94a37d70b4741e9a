"""
The C{WHO} path: from a login to its reply, at once when it can be, and
never later than C{--query-timeout}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.interfaces import IAvatarStore, IImmediateLookup, IRenderer, IReplyCache, WouldBlock
from avatard.model import Avatar, loginProblem
from avatard.request.replies import NOT_FOUND, UNAVAILABLE, badRequest, ok
from avatard.text import terminalSafe

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.commands.Responder")

DEFAULT_QUERY_TIMEOUT = 3.0
"""
Seconds a lookup may take before its request is answered C{ERR unavailable}.
"""

REPORT_INTERVAL = 10.0
"""
Seconds after reporting an episode of database failures during which a new
episode is counted but not reported yet.
"""

_WHO_OK = ("WHO", "ok")
_WHO_NOT_FOUND = ("WHO", "not-found")
_WHO_BAD = ("WHO", "bad-request")
_WHO_UNAVAILABLE = ("WHO", "unavailable")


class WhoPath:
    """
    Answers C{WHO <login>} for a login that passed the rules.

    The store is read at once where it can be (L{IImmediateLookup}: SQLite
    read in the reactor thread), which costs no L{Deferred}; otherwise the
    lookup goes through a L{Deferred} bounded by C{queryTimeout}.  Found
    users are rendered by C{renderer}; every reply of a lookup that
    succeeded is kept by C{cache}, if any.  Lookups that fail or time out
    are answered C{ERR unavailable} and reported once per episode
    (L{Episode}, with a quiet time of L{REPORT_INTERVAL}), with their
    cause; the end of an episode once, with how many lookups failed.

    Lines the cache can answer never come here: the responder asks the
    cache before it decodes a line.
    """

    def __init__(
        self,
        store: IAvatarStore,
        renderer: IRenderer,
        clock: IReactorTime,
        queryTimeout: float,
        cache: IReplyCache | None,
        counters: Counters,
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.clock = clock
        self.queryTimeout = queryTimeout
        self.cache = cache
        self.counters = counters
        self.failures = Episode(clock, REPORT_INTERVAL)
        self._lookupNow = store.lookupNow if IImmediateLookup.providedBy(store) else None

    def who(self, login: str, line: bytes) -> bytes | Deferred[bytes]:
        """
        @param line: the request line, which the reply is cached under.
        @return: the reply, or a L{Deferred} that fires with it within
            C{queryTimeout} seconds and never fails.
        """
        problem = loginProblem(login)
        if problem is not None:
            self.counters.requests[_WHO_BAD] += 1
            return badRequest(problem)
        cache = self.cache
        stamp = cache.stamp() if cache is not None else 0.0
        if self._lookupNow is not None:
            try:
                avatar = self._lookupNow(login)
            except WouldBlock:
                pass
            else:
                try:
                    return self._found(avatar, login, line, stamp)
                except Exception:
                    return self._failed(Failure())
        lookup = self.store.lookup(login)
        answered = lookup.called
        if not answered:
            lookup.addTimeout(self.queryTimeout, self.clock)
        # The errback also covers a renderer that raises: the reply is then
        # ERR unavailable too, and the error is logged.
        answer = lookup.addCallback(self._found, login, line, stamp).addErrback(self._failed)
        if answered:
            # Answered already (by a store that reads at once): return the
            # reply itself, which is written without a wait in line.
            replies: list[bytes] = []
            answer.addCallback(replies.append)
            return replies[0]
        return answer

    def _found(self, avatar: Avatar | None, login: str, line: bytes, stamp: float) -> bytes:
        failures = self.failures
        if failures.failing:
            count = failures.success()
            if count is not None:
                _log.info("The database answers again ({count} lookups failed meanwhile).", count=count)
        if avatar is None:
            reply = NOT_FOUND
            self.counters.requests[_WHO_NOT_FOUND] += 1
        else:
            reply = ok(self.renderer.render(avatar))
            self.counters.requests[_WHO_OK] += 1
        if self.cache is not None:
            self.cache.put(line, login, reply, avatar is not None, "WHO", stamp)
        return reply

    def _failed(self, failure: Failure) -> bytes:
        counters = self.counters
        counters.databaseErrors += 1
        counters.requests[_WHO_UNAVAILABLE] += 1
        if self.failures.failure():
            if failure.check(TimeoutError):
                cause = f"no answer within {self.queryTimeout:g} s"
            else:
                cause = terminalSafe(failure.getErrorMessage() or repr(failure.value))
            earlier = self.failures.failures - 1
            _log.error(
                "Database lookups fail, answering ERR unavailable until they work again: {cause}{earlier}",
                cause=cause,
                earlier=f" ({earlier} lookups failed since the last report)" if earlier else "",
            )
        return UNAVAILABLE
