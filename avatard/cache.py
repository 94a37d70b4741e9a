"""
A bounded cache of rendered replies, with bounded staleness.

Reading a login through the database thread pool costs a thread hand-off
and back, far more than writing a reply already rendered.  L{ReplyCache}
keeps the reply bytes of recent lookups, found and not found, for at most
C{ttl} seconds counted from when the lookup that produced them began: a
change in the database shows in replies within C{ttl} seconds, whatever the
load.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

DEFAULT_CACHE_SIZE = 100_000
"""
The most replies of users found kept at once.
"""

DEFAULT_CACHE_TTL = 1.0
"""
Seconds a cached reply may be used, counted from the start of the lookup
that produced it.
"""

NEGATIVE_SHARE = 4
"""
Replies for logins not found take at most one part in this many of the
cache's size (at least one entry): a scanner trying random logins cannot
push out the replies of real users.
"""


class _Entries:
    """
    Replies in the order they were stored, which, as every entry lives for
    the same time from the start of its lookup, is also about the order in
    which they expire (lookups that end out of order bend it a little; a
    reply kept past its time is never used, and the size bound holds).
    """

    __slots__ = ("limit", "replies")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # login -> (expiry, reply)
        self.replies: dict[str, tuple[float, bytes]] = {}

    def put(self, login: str, expires: float, reply: bytes, now: float) -> None:
        replies = self.replies
        # Re-inserting moves the login to the end, where the latest expiries are.
        replies.pop(login, None)
        if len(replies) >= self.limit:
            self._purge(now)
            if len(replies) >= self.limit:
                del replies[next(iter(replies))]
        replies[login] = (expires, reply)

    def _purge(self, now: float) -> None:
        replies = self.replies
        expired = []
        for login, (expires, _) in replies.items():
            if expires > now:
                break
            expired.append(login)
        for login in expired:
            del replies[login]


class ReplyCache:
    """
    Rendered replies by login.

    At most C{size} replies of users found, and C{size // NEGATIVE_SHARE}
    (at least one) of logins not found, are kept; when full, the oldest
    goes.  A reply is used for at most C{ttl} seconds after the start of the
    lookup it came from.  Failed lookups are never cached.
    """

    def __init__(
        self, clock: IReactorTime, size: int = DEFAULT_CACHE_SIZE, ttl: float = DEFAULT_CACHE_TTL
    ) -> None:
        if size <= 0 or ttl <= 0:
            raise ValueError("a reply cache needs a positive size and ttl; use no cache to disable it")
        self.clock = clock
        self.ttl = ttl
        self._found = _Entries(size)
        self._missing = _Entries(max(1, size // NEGATIVE_SHARE))
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._found.replies) + len(self._missing.replies)

    def get(self, login: str) -> bytes | None:
        """
        @return: the cached reply for C{login}, or L{None} if there is none
            fresh enough.
        """
        entry = self._found.replies.get(login) or self._missing.replies.get(login)
        if entry is not None and entry[0] > self.clock.seconds():
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, login: str, reply: bytes, found: bool, since: float) -> None:
        """
        Keep C{reply} for C{login}.

        @param found: whether the login was found (the reply is C{OK}).
        @param since: when the lookup that produced C{reply} began, as the
            clock counts.
        """
        now = self.clock.seconds()
        expires = since + self.ttl
        if expires <= now:
            return
        if found:
            self._missing.replies.pop(login, None)
            self._found.put(login, expires, reply, now)
        else:
            self._found.replies.pop(login, None)
            self._missing.put(login, expires, reply, now)
