"""
The daemon's counters: where every count is made, and what C{STATS},
C{STATUS=}, the stop line and C{/metrics} read.

Counting costs the hot path nothing it does not need: a C{WHO} answered
from the cache is counted once, as a cache hit (and the few cached
C{not-found} replies once more, to tell them apart), and
L{Counters.requestCounts} adds the hits back in when asked.
"""

from __future__ import annotations

from collections import Counter

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


def countsByResult(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    """
    @param counts: requests by C{(command, result)}.
    @return: requests by result, every one of L{RESULTS} present.
    """
    byResult = dict.fromkeys(RESULTS, 0)
    for (_, result), count in counts.items():
        byResult[result] += count
    return byResult


class Counters:
    """
    Every count of one daemon, since it started.

    @ivar requests: requests answered, by C{(command, result)}, except
        C{WHO} requests answered from the cache (L{cacheHits}).
    @ivar cacheHits: C{WHO} requests answered from the reply cache.
    @ivar cachedNotFound: those of them answered C{not-found}.
    @ivar cacheMisses: lookups begun for want of a cached reply.
    @ivar databaseErrors: lookups that failed or timed out.
    @ivar connectionsOpen: connections open now.
    @ivar connectionsOpened: connections accepted (refused ones excluded).
    @ivar connectionsRefused: connections refused with C{ERR busy}.
    @ivar requestsDropped: requests read but left unanswered by connections
        dropped at the shutdown deadline.
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.cacheHits = 0
        self.cachedNotFound = 0
        self.cacheMisses = 0
        self.databaseErrors = 0
        self.connectionsOpen = 0
        self.connectionsOpened = 0
        self.connectionsRefused = 0
        self.requestsDropped = 0

    def requestCounts(self) -> dict[tuple[str, str], int]:
        """
        @return: the requests answered so far, by C{(command, result)},
            every pair that has occurred, those answered from the cache
            included.
        """
        counts = dict(self.requests)
        if self.cacheHits:
            counts[_WHO_OK] = counts.get(_WHO_OK, 0) + self.cacheHits - self.cachedNotFound
            counts[_WHO_NOT_FOUND] = counts.get(_WHO_NOT_FOUND, 0) + self.cachedNotFound
        return {key: value for key, value in counts.items() if value}

    def requestsByResult(self) -> dict[str, int]:
        """
        @return: requests answered, by result, every result of L{RESULTS}
            present.
        """
        return countsByResult(self.requestCounts())
