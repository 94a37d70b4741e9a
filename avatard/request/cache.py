"""
A bounded cache of rendered replies, with bounded staleness.

Reading a login through the database costs far more than writing a reply
already rendered.  Both caches here keep the reply bytes of recent
lookups, found and not found, within a size bound, for as long as they are
known to be current:

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
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from avatard.counters import Counters
from avatard.interfaces import IChangeWatch, IReplyCache, WouldBlock

DEFAULT_CACHE_SIZE = 100_000
"""
The most replies of users found kept at once.
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
Replies for logins not found take at most one part in this many of the
cache's size (at least one entry): a scanner trying random logins cannot
push out the replies of real users.
"""


V = TypeVar("V", bytes, tuple[float, bytes])


class _Entries(Generic[V]):
    """
    Replies in the order they were stored, oldest first, in an
    L{OrderedDict}: taking the oldest out of a plain C{dict} costs a scan
    over every slot deleted before it, which grows as a full cache turns
    over, where an C{OrderedDict} takes it in constant time.

    Replies that expire (C{(expiry, reply)} pairs, each living for the same
    time from the start of its lookup) are then also about in the order in
    which they expire: lookups that end out of order bend it a little, but
    a reply kept past its time is never used, and the size bound holds.
    """

    __slots__ = ("limit", "replies")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.replies: OrderedDict[bytes, V] = OrderedDict()

    def put(self, request: bytes, value: V, now: float | None = None) -> None:
        """
        Store C{value} as the newest entry, making room if full: first by
        dropping entries expired by C{now} (when given), then the oldest.
        """
        replies = self.replies
        # Re-inserting moves the request to the end, where the latest expiries are.
        replies.pop(request, None)
        if len(replies) >= self.limit:
            if now is not None:
                self._purge(now)
            if len(replies) >= self.limit:
                replies.popitem(last=False)
        replies[request] = value

    def _purge(self, now: float) -> None:
        replies = self.replies
        while replies:
            entry = next(iter(replies.values()))
            if not isinstance(entry, tuple) or entry[0] > now:
                break
            replies.popitem(last=False)


class _Cache(Generic[V]):
    """
    What both caches share: replies of users found, and of logins not
    found within their own smaller bound, by request line, and counters.

    Requests answered from the cache, and lookups begun (L{stamp}) for
    want of a cached reply, are counted in C{counters}.

    @ivar size: the most replies of users found kept at once.
    """

    def __init__(self, size: int, counters: Counters | None) -> None:
        self.size = size
        self.counters = Counters() if counters is None else counters
        self._found: _Entries[V] = _Entries(size)
        self._missing: _Entries[V] = _Entries(max(1, size // NEGATIVE_SHARE))

    def __len__(self) -> int:
        return len(self._found.replies) + len(self._missing.replies)

    def _store(self, request: bytes, value: V, found: bool, now: float | None) -> None:
        if found:
            self._missing.replies.pop(request, None)
            self._found.put(request, value, now)
        else:
            self._found.replies.pop(request, None)
            self._missing.put(request, value, now)


@implementer(IReplyCache)
class ReplyCache(_Cache[tuple[float, bytes]]):
    """
    Rendered replies by request line, each for a bounded time.

    At most C{size} replies of users found, and C{size // NEGATIVE_SHARE}
    (at least one) of logins not found, are kept; when full, the oldest
    goes.  A reply is used for at most C{ttl} seconds after the start of
    the lookup it came from.  Failed lookups are never cached.
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
        entry = self._found.replies.get(request) or self._missing.replies.get(request)
        if entry is not None and entry[0] > self.clock.seconds():
            self.counters.cacheHits += 1
            return entry[1]
        return None

    def stamp(self) -> float:
        """
        @return: now: a reply expires C{ttl} seconds after its lookup began.
        """
        self.counters.cacheMisses += 1
        return self.clock.seconds()

    def put(self, request: bytes, reply: bytes, found: bool, stamp: float) -> None:
        now = self.clock.seconds()
        expires = stamp + self.ttl
        if expires > now:
            self._store(request, (expires, reply), found, now)


@implementer(IReplyCache)
class WatchedReplyCache(_Cache[bytes]):
    """
    Rendered replies by request line, for as long as a store reports no change.

    At most C{size} replies of users found, and C{size // NEGATIVE_SHARE}
    (at least one) of logins not found, are kept; when full, the oldest
    goes.  Failed lookups are never cached.

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
        reply = self._found.replies.get(request) or self._missing.replies.get(request)
        if reply is not None:
            self.counters.cacheHits += 1
        return reply

    def stamp(self) -> float:
        """
        @return: how many times the cache was emptied so far.
        """
        self.counters.cacheMisses += 1
        return self._epoch

    def put(self, request: bytes, reply: bytes, found: bool, stamp: float) -> None:
        if stamp == self._epoch:
            self._store(request, reply, found, None)

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
        if self._found.replies or self._missing.replies:
            self._found.replies.clear()
            self._missing.replies.clear()
            self.flushes += 1
        self._version = version
        self._epoch += 1
