"""
A bounded cache of rendered replies, with bounded staleness.

Reading a login through the database costs far more than writing a reply
already rendered.  Both caches here keep the reply bytes of recent
lookups, found and not found, by request line, within a size bound
counted in users (every reply kept for one login, whatever its format or
spelling, shares one entry), for as long as they are known to be current:

  - L{WatchedReplyCache}, in front of a store that can tell when its data
    changes (L{IChangeWatch}, as SQLite can): until the data changes.  The
    store is asked at most every L{CHECK_INTERVAL} seconds, and a change
    empties the cache, so a commit shows in replies within about that
    interval;
  - L{ReplyCache}, in front of any store: for at most C{ttl} seconds
    counted from when the lookup that produced them began, so a change in
    the database shows in replies within C{ttl} seconds, whatever the load.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Generic, TypeAlias, TypeVar

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from avatard.counters import PLAIN_HIT, Counters
from avatard.interfaces import IChangeWatch, IReplyCache, WouldBlock

DEFAULT_CACHE_SIZE = 100_000
"""
The most users found whose replies are kept at once.
"""

DEFAULT_CACHE_TTL = 1.0
"""
Seconds a cached reply may be used, counted from the start of the lookup
that produced it.
"""

CHECK_INTERVAL = 0.01
"""
Seconds between two questions to a watched store about whether its data
changed.  Asking SQLite begins and ends a read transaction, a lock and an
unlock of the file, which costs more than a cached request itself: asked
once per request, it would be most of what a request costs
(docs/PERFORMANCE.md).
"""

NEGATIVE_SHARE = 4
"""
Logins not found take at most one part in this many of the cache's size
(at least one entry): a scanner trying random logins cannot push out the
replies of real users.
"""

LINES_PER_USER = 8
"""
The most request lines whose replies are kept for one user: lines that
differ in case or white space (C{WHO yoen}, C{who  yoen}), or in format
(C{JSON yoen}), are kept apart, and a client sending ever new spellings
of one login replaces that user's oldest line rather than growing the
entry.
"""


DOORKEEPER_SHARE = 4
"""
A full cache remembers at most one part in this many of its bound of
users (found, and not found, each) of the new users it turned away: a new
user is kept only when asked again while remembered (L{_Cache}).
"""


V = TypeVar("V", bytes, tuple[float, bytes])

# A reply kept for a user found, to a request of this command, counts as
# PLAIN_HIT when it answers.
_PLAIN_COMMAND = PLAIN_HIT[0]

_Lines: TypeAlias = bytes | tuple[bytes, ...]
"""
The request lines of one user's replies, oldest first: the line itself
when there is one (most users), which saves a tuple per user.
"""


def _each(lines: _Lines) -> tuple[bytes, ...]:
    """
    @return: C{lines} as a tuple.
    """
    return (lines,) if isinstance(lines, bytes) else lines


class _Cache(Generic[V]):
    """
    What both caches share: replies by request line, grouped by user within
    a size bound counted in users, and counters.

    Two dictionaries hold the replies by request line: C{_plain} those
    counted as L{PLAIN_HIT} (a C{WHO} of a user found, the most frequent
    request by far), found by one lookup and counted by one increment of
    L{Counters.cacheHits}, from which the counters tell them when asked;
    C{_apart} the others, found by a second lookup, each with what it
    counts as (L{Counters.cachedApart}).  C{_found} and
    C{_missing} hold the users (logins found, and not found) in the order
    their replies were last stored, oldest first, in an L{OrderedDict}:
    taking the oldest out of a plain C{dict} costs a scan over every slot
    deleted before it, which grows as a full cache turns over, where an
    C{OrderedDict} takes it in constant time.  Each user has the request
    lines of its replies, oldest first, at most L{LINES_PER_USER}.  A user
    dropped takes every line of its replies with it.

    A full cache admits a new user (found, or not) only on its second
    asking: the first time, it remembers the login in a doorkeeper set (one
    for each kind, at most one part in L{DOORKEEPER_SHARE} of the kind's
    bound, emptied when it would grow past that) and keeps nothing; when
    the login is stored again while remembered, it is kept, and the oldest
    user goes.  Logins asked once (most of a large directory's, and a
    scanner's) then never push out those asked often, and cost a set
    insertion instead of an eviction; a hit costs nothing more.

    Requests answered from the cache, and lookups begun (L{stamp}) for
    want of a cached reply, are counted in C{counters}.

    @ivar size: the most users found whose replies are kept at once.
    """

    def __init__(self, size: int, counters: Counters | None) -> None:
        self.size = size
        self.counters = Counters() if counters is None else counters
        self._plain: dict[bytes, V] = {}
        self._apart: dict[bytes, tuple[V, tuple[str, str]]] = {}
        self._found: OrderedDict[str, _Lines] = OrderedDict()
        self._missing: OrderedDict[str, _Lines] = OrderedDict()
        self._missingLimit = max(1, size // NEGATIVE_SHARE)
        self._seenFound: set[str] = set()
        self._seenMissing: set[str] = set()

    def __len__(self) -> int:
        """
        @return: how many users (logins found or not) have replies kept.
        """
        return len(self._found) + len(self._missing)

    def _store(
        self, request: bytes, user: str, value: V, found: bool, command: str, now: float | None
    ) -> None:
        """
        Keep C{value} as the newest reply to C{request}, a request of
        C{command} for C{user}, who was C{found} or not: C{user} becomes
        the newest user of its kind (making room if full, first by dropping
        users whose replies all expired by C{now}, when given, then, if the
        doorkeeper admits it, the oldest; otherwise nothing is kept), and
        C{request} its newest line (dropping its oldest when
        it has L{LINES_PER_USER} already).  Whatever was kept for C{user}
        as the other kind (found, or not) is dropped: it is out of date.
        """
        users: OrderedDict[str, _Lines]
        others: OrderedDict[str, _Lines]
        if found:
            users, others, limit, seen = self._found, self._missing, self.size, self._seenFound
        else:
            users, others, limit, seen = self._missing, self._found, self._missingLimit, self._seenMissing
        if user in others:
            self._forget(others.pop(user))
        if user not in users and len(users) >= limit:
            # A new user, and no room: first drop users whose replies all
            # expired, then admit the user only if it was turned away once
            # already since the doorkeeper was last emptied.
            if now is not None:
                self._dropExpired(users, now)
            if len(users) >= limit:
                if user not in seen:
                    seen.add(user)
                    if len(seen) > max(1, limit // DOORKEEPER_SHARE):
                        seen.clear()
                        seen.add(user)
                    return
                seen.discard(user)
        if found and command == _PLAIN_COMMAND:
            self._plain[request] = value
        else:
            self._apart[request] = (value, (command, "ok" if found else "not-found"))
        size = len(users)
        kept = users.setdefault(user, request)
        if len(users) > size:
            # A new user, now the newest: none of its lines was kept (a key
            # always names the same login).
            if size >= limit:
                # Inlined for a user of one line, the most frequent.
                evicted = users.popitem(last=False)[1]
                if isinstance(evicted, bytes):
                    if self._plain.pop(evicted, None) is None:
                        self._apart.pop(evicted, None)
                else:
                    self._forget(evicted)
            return
        # A user kept already becomes the newest, where the latest expiries are.
        users.move_to_end(user)
        if kept == request:
            return
        earlier: tuple[bytes, ...] = _each(kept)
        if request in earlier:
            # Now the newest line, kept once.
            users[user] = (*(line for line in earlier if line != request), request)
            return
        if len(earlier) >= LINES_PER_USER:
            self._forget(earlier[0])
            earlier = earlier[1:]
        users[user] = (*earlier, request)

    def _forget(self, lines: _Lines) -> None:
        """
        Drop the replies to C{lines}.
        """
        if isinstance(lines, bytes):
            if self._plain.pop(lines, None) is None:
                self._apart.pop(lines, None)
            return
        for line in lines:
            if self._plain.pop(line, None) is None:
                self._apart.pop(line, None)

    def _dropExpired(self, users: OrderedDict[str, _Lines], now: float) -> None:
        """
        Drop the oldest users of C{users} for as long as every reply they
        have expired by C{now}; replies that never expire are never
        dropped here.
        """

    def _clear(self) -> None:
        """
        Drop every reply.
        """
        self._plain.clear()
        self._apart.clear()
        self._found.clear()
        self._missing.clear()
        self._seenFound.clear()
        self._seenMissing.clear()


@implementer(IReplyCache)
class ReplyCache(_Cache[tuple[float, bytes]]):
    """
    Rendered replies by request line, each for a bounded time.

    The replies of at most C{size} users found, and C{size //
    NEGATIVE_SHARE} (at least one) logins not found, each with at most
    L{LINES_PER_USER} request lines, are kept; when full, a new user is
    kept when asked a second time, and the user whose replies were stored
    longest ago goes.  A reply is used for at most
    C{ttl} seconds after the start of the lookup it came from.  Failed
    lookups are never cached.

    Users whose replies were stored longer ago are about those whose
    replies expire first (each lives for the same time from the start of
    its lookup): lookups that end out of order bend that order a little,
    but a reply kept past its time is never used, and the size bound
    holds.
    """

    def __init__(
        self,
        clock: IReactorTime,
        size: int = DEFAULT_CACHE_SIZE,
        ttl: float = DEFAULT_CACHE_TTL,
        counters: Counters | None = None,
    ) -> None:
        if size <= 0 or ttl <= 0:
            raise ValueError("a reply cache needs a positive size and ttl; use no cache to disable it")
        super().__init__(size, counters)
        self.clock = clock
        self.ttl = ttl

    def get(self, request: bytes) -> bytes | None:
        entry = self._plain.get(request)
        if entry is not None:
            if entry[0] > self.clock.seconds():
                self.counters.cacheHits += 1
                return entry[1]
            return None
        apart = self._apart.get(request)
        if apart is not None and apart[0][0] > self.clock.seconds():
            counters = self.counters
            counters.cacheHits += 1
            counters.cachedApart[apart[1]] += 1
            return apart[0][1]
        return None

    def stamp(self) -> float:
        """
        @return: now: a reply expires C{ttl} seconds after its lookup began.
        """
        self.counters.cacheMisses += 1
        return self.clock.seconds()

    def put(self, request: bytes, user: str, reply: bytes, found: bool, command: str, stamp: float) -> None:
        now = self.clock.seconds()
        expires = stamp + self.ttl
        if expires > now:
            self._store(request, user, (expires, reply), found, command, now)

    def _dropExpired(self, users: OrderedDict[str, _Lines], now: float) -> None:
        while users and all(self._expiry(line) <= now for line in _each(next(iter(users.values())))):
            self._forget(users.popitem(last=False)[1])

    def _expiry(self, line: bytes) -> float:
        entry = self._plain.get(line)
        if entry is None:
            apart = self._apart.get(line)
            return -math.inf if apart is None else apart[0][0]
        return entry[0]


@implementer(IReplyCache)
class WatchedReplyCache(_Cache[bytes]):
    """
    Rendered replies by request line, for as long as a store reports no change.

    The replies of at most C{size} users found, and C{size //
    NEGATIVE_SHARE} (at least one) logins not found, each with at most
    L{LINES_PER_USER} request lines, are kept; when full, a new user is
    kept when asked a second time, and the user whose replies were stored
    longest ago goes.  Failed lookups are never cached.

    C{watch} is asked at most every L{CHECK_INTERVAL} seconds whether the
    data changed.  When it did, or C{watch} cannot tell, every reply is
    dropped, and a reply whose lookup began before that is not kept: a
    reply is out of date by at most L{CHECK_INTERVAL} seconds plus however
    long the store's view of its data may lag (for SQLite, which reads
    within a transaction of L{avatard.stores.sqlite.store.READ_SPAN} seconds, that much).

    @ivar flushes: times the cache was emptied because the data changed, or
        may have.
    """

    def __init__(
        self,
        clock: IReactorTime,
        watch: IChangeWatch,
        size: int = DEFAULT_CACHE_SIZE,
        counters: Counters | None = None,
    ) -> None:
        if size <= 0:
            raise ValueError("a reply cache needs a positive size; use no cache to disable it")
        super().__init__(size, counters)
        self.clock = clock
        self.watch = watch
        self.flushes = 0
        # The version the entries belong to (None: unknown), and a count of
        # the times they were dropped, which stamps lookups.
        self._version: int | None = None
        self._epoch = 0
        self._nextCheck = -math.inf

    def get(self, request: bytes) -> bytes | None:
        now = self.clock.seconds()
        if now >= self._nextCheck:
            self._check(now)
        reply = self._plain.get(request)
        if reply is not None:
            self.counters.cacheHits += 1
            return reply
        apart = self._apart.get(request)
        if apart is not None:
            counters = self.counters
            counters.cacheHits += 1
            counters.cachedApart[apart[1]] += 1
            return apart[0]
        return None

    def stamp(self) -> float:
        """
        @return: how many times the cache was emptied so far.
        """
        self.counters.cacheMisses += 1
        return self._epoch

    def put(self, request: bytes, user: str, reply: bytes, found: bool, command: str, stamp: float) -> None:
        if stamp == self._epoch:
            self._store(request, user, reply, found, command, None)

    def _check(self, now: float) -> None:
        """
        Ask the watch whether the data changed; if it did, or it cannot
        tell, drop every entry.
        """
        self._nextCheck = now + CHECK_INTERVAL
        try:
            version: int | None = self.watch.version()
        except WouldBlock:
            version = None
        if version is not None and version == self._version:
            return
        if self._found or self._missing:
            self._clear()
            self.flushes += 1
        self._version = version
        self._epoch += 1
