"""
The daemon's counters: where every count is made, and what C{STATS},
C{STATUS=}, the stop line and C{/metrics} read.

Counting costs the hot path nothing it does not need: a request answered
from the cache is counted once, as a cache hit (and those that do not
count as L{PLAIN_HIT}, a C{WHO} of a user found, once more, by command and
result), and L{Counters.requestCounts} adds the hits back in when asked.
"""

from __future__ import annotations

from collections import Counter

COMMANDS = ("WHO", "JSON", "PING", "STATS", "HELP", "QUIT")
"""
The commands of the protocol, as they are counted and logged.
"""

NO_COMMAND = "-"
"""
How requests without a known command (empty, not UTF-8, unknown, too long)
are counted and logged: never by the word the client sent.
"""

RESULTS = ("ok", "not-found", "bad-request", "unavailable", "too-long", "timeout", "busy", "rate-limit")
"""
The result of a request: C{ok}, or the code of its C{ERR} reply.
"""

PLAIN_HIT = ("WHO", "ok")
"""
What a request answered from the cache counts as, unless it is counted
apart (L{Counters.cachedApart}): a C{WHO} of a user found.
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


class Counters:
    """
    Every count of one daemon, since it started.

    @ivar requests: requests answered, by C{(command, result)}, except
        those answered from the cache (L{cacheHits}).
    @ivar cacheHits: requests answered from the reply cache, of every
        command.
    @ivar cachedApart: those of them that do not count as L{PLAIN_HIT}
        (C{WHO} of a login not found, C{JSON}...), by C{(command, result)}.
    @ivar cacheMisses: lookups begun for want of a cached reply.
    @ivar databaseErrors: lookups that failed or timed out.
    @ivar connectionsOpen: connections open now.
    @ivar connectionsOpened: connections accepted (refused ones excluded).
    @ivar connectionsRefused: connections refused with C{ERR busy}.
    @ivar connectionsDenied: connections refused with C{ERR denied}, from
        outside C{--allow}.
    @ivar requestsDropped: requests read but left unanswered by connections
        dropped at the shutdown deadline.
    @ivar proxyRefused: connections to a C{haproxy:} port closed because
        their sender is outside C{--proxy-from}.
    @ivar proxyInvalid: connections to a C{haproxy:} port closed because
        they did not start with a valid PROXY header in time.
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.cacheHits = 0
        self.cachedApart: Counter[tuple[str, str]] = Counter()
        self.cacheMisses = 0
        self.databaseErrors = 0
        self.connectionsOpen = 0
        self.connectionsOpened = 0
        self.connectionsRefused = 0
        self.connectionsDenied = 0
        self.requestsDropped = 0
        self.proxyRefused = 0
        self.proxyInvalid = 0

    def requestCounts(self) -> dict[tuple[str, str], int]:
        """
        @return: the requests answered so far, by C{(command, result)},
            every pair that has occurred, those answered from the cache
            included.
        """
        counts = dict(self.requests)
        if self.cacheHits:
            plain = self.cacheHits
            for key, count in self.cachedApart.items():
                counts[key] = counts.get(key, 0) + count
                plain -= count
            counts[PLAIN_HIT] = counts.get(PLAIN_HIT, 0) + plain
        return {key: value for key, value in counts.items() if value}

    def answered(self, command: str) -> int:
        """
        @return: the requests of C{command} answered so far, whatever their
            result.
        """
        return sum(count for (name, _), count in self.requestCounts().items() if name == command)

    def requestsByResult(self) -> dict[str, int]:
        """
        @return: requests answered, by result, every result of L{RESULTS}
            present.
        """
        return countsByResult(self.requestCounts())
