"""
The lookup path of C{WHO}, C{JSON} and any other reply format: from a
login to its reply, at once when it can be, and never later than
C{--query-timeout}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard.counters import Counters
from avatard.episodes import Episode
from avatard.interfaces import (
    IAvatarStore,
    IImmediateLookup,
    IRenderer,
    IReplyCache,
    IReplyFormat,
    WouldBlock,
)
from avatard.model import Avatar, loginProblem
from avatard.request.formats import WhoFormat
from avatard.request.replies import ok
from avatard.text import terminalSafe

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.commands.Responder")

_WHO_OK = ("WHO", "ok")
"""
What a C{WHO} of a user found counts as.
"""

DEFAULT_QUERY_TIMEOUT = 3.0
"""
Seconds a lookup may take before its request is answered C{ERR unavailable}.
"""

REPORT_INTERVAL = 10.0
"""
Seconds after reporting an episode of database failures during which a new
episode is counted but not reported yet.
"""


class WhoPath:
    """
    Answers a lookup of one login, in the reply format it is asked for
    (L{IReplyFormat}): C{WHO} and C{JSON} of the WHO protocol, and any
    other front-end's, share this path, its cache, its coalescing store,
    its timeouts, its reports of failures and its counters.

    The store is read at once where it can be (L{IImmediateLookup}: SQLite
    read in the reactor thread), which costs no L{Deferred}; otherwise the
    lookup goes through a L{Deferred} bounded by C{queryTimeout}.  Every
    reply of a lookup that succeeded is kept by C{cache}, if any, under
    its key, in the entry of its login.  Lookups that fail or time out are
    answered in their format's C{unavailable} reply and reported once per
    episode (L{Episode}, with a quiet time of L{REPORT_INTERVAL}), with
    their cause; the end of an episode once, with how many lookups failed.

    Requests the cache can answer never come here: the responder asks the
    cache before it decodes a line.

    @ivar whoFormat: the format of C{WHO} replies, with C{renderer}.
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
        self.whoFormat = WhoFormat(renderer)
        self._render = renderer.render
        self.clock = clock
        self.queryTimeout = queryTimeout
        self.cache = cache
        self.counters = counters
        self.failures = Episode(clock, REPORT_INTERVAL)
        self._lookupNow = store.lookupNow if IImmediateLookup.providedBy(store) else None

    def lookup(self, replyFormat: IReplyFormat, login: str, key: bytes) -> bytes | Deferred[bytes]:
        """
        Look C{login} up and answer in C{replyFormat}, counted under its
        command.

        A front-end other than the WHO protocol's calls this with its own
        format and keys, and asks the cache (L{IReplyCache.get}) for a
        request's key before it calls this, as the responder does for
        request lines.

        @param key: what the reply is cached under, and found by before
            anything is decoded: for the WHO protocol, the request line.
            Another front-end's keys must never equal a key of another
            format: a request line never holds C{\\n}, so a key that holds
            one (C{b"finger\\n" + query}) never collides with one.  A key
            always names the same login.
        @return: the reply, or a L{Deferred} that fires with it within
            C{queryTimeout} seconds and never fails.
        """
        problem = loginProblem(login)
        if problem is not None:
            self.counters.requests[replyFormat.command, "bad-request"] += 1
            return replyFormat.badLogin(problem)
        cache = self.cache
        stamp = cache.stamp() if cache is not None else 0.0
        if self._lookupNow is not None:
            try:
                avatar = self._lookupNow(login)
            except WouldBlock:
                pass
            else:
                try:
                    return self._found(avatar, replyFormat, login, key, stamp)
                except Exception:
                    return self._failed(Failure(), replyFormat)
        lookup = self.store.lookup(login)
        answered = lookup.called
        if not answered:
            lookup.addTimeout(self.queryTimeout, self.clock)
        # The errback also covers a format that raises: the reply is then
        # unavailable too, and the error is logged.
        answer = lookup.addCallback(self._found, replyFormat, login, key, stamp).addErrback(
            self._failed, replyFormat
        )
        if answered:
            # Answered already (by a store that reads at once): return the
            # reply itself, which is written without a wait in line.
            replies: list[bytes] = []
            answer.addCallback(replies.append)
            return replies[0]
        return answer

    def _found(
        self, avatar: Avatar | None, replyFormat: IReplyFormat, login: str, key: bytes, stamp: float
    ) -> bytes:
        failures = self.failures
        if failures.failing:
            count = failures.success()
            if count is not None:
                _log.info("The database answers again ({count} lookups failed meanwhile).", count=count)
        if avatar is None:
            reply: bytes = replyFormat.notFound
            self.counters.requests[replyFormat.command, "not-found"] += 1
        elif replyFormat is self.whoFormat:
            # WHO's own format, written out: the most frequent reply of a
            # lookup, spared a call and a counter key built each time
            # (docs/PERFORMANCE.md).
            reply = ok(self._render(avatar))
            self.counters.requests[_WHO_OK] += 1
        else:
            reply = replyFormat.found(avatar)
            self.counters.requests[replyFormat.command, "ok"] += 1
        if self.cache is not None:
            self.cache.put(key, login, reply, avatar is not None, replyFormat.command, stamp)
        return reply

    def _failed(self, failure: Failure, replyFormat: IReplyFormat) -> bytes:
        counters = self.counters
        counters.databaseErrors += 1
        counters.requests[replyFormat.command, "unavailable"] += 1
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
        reply: bytes = replyFormat.unavailable
        return reply
