"""
The daemon's counters, read when asked: by C{STATS} and by C{/metrics}.

Nothing here runs per request.  The counters live where the work is done
(the responder counts requests, the factory connections, the cache its hits
and misses, the pool its threads) and L{Statistics} reads them on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from avatard.commands import countsByResult
from avatard.protocol import WhoFactory


@dataclass(frozen=True)
class PoolState:
    """
    The database pool's threads.

    @ivar busy: threads running a query now.
    @ivar size: the most threads the pool runs.
    """

    busy: int
    size: int


class Statistics:
    """
    Reads the counters of one daemon.

    @ivar started: when the daemon started, as C{clock} counts.
    @ivar pool: what tells the database pool's threads running a query now
        and the most it runs (L{avatard.interfaces.IStorage.poolState}), if
        there is a pool to report on.
    """

    def __init__(
        self,
        clock: IReactorTime,
        factory: WhoFactory,
        pool: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.clock = clock
        self.factory = factory
        self.pool = pool
        self.started = clock.seconds()

    def uptime(self) -> float:
        """
        @return: seconds since the daemon started.
        """
        return self.clock.seconds() - self.started

    def requestCounts(self) -> dict[tuple[str, str], int]:
        """
        @return: requests answered, by C{(command, result)}; see
            L{avatard.commands.Responder.requestCounts}.
        """
        return self.factory.responder.requestCounts()

    def requestsByResult(self) -> dict[str, int]:
        """
        @return: requests answered, by result, every result of
            L{avatard.commands.RESULTS} present.
        """
        return countsByResult(self.requestCounts())

    def poolState(self) -> PoolState | None:
        """
        @return: the pool's state, or L{None} without a pool.
        """
        return None if self.pool is None else PoolState(*self.pool())

    def counters(self) -> list[tuple[str, int | float]]:
        """
        @return: every counter, named as C{STATS} names it, in a fixed order.
        """
        factory = self.factory
        responder = factory.responder
        cache = responder.cache
        pool = self.poolState()
        counters: list[tuple[str, int | float]] = [
            ("uptime", round(self.uptime(), 3)),
            ("connections.open", len(factory.connections)),
            ("connections.total", factory.opened),
            ("connections.refused", factory.refused),
        ]
        counters.extend((f"requests.{result}", count) for result, count in self.requestsByResult().items())
        counters += [
            ("cache.hits", 0 if cache is None else cache.hits),
            ("cache.misses", 0 if cache is None else cache.misses),
            ("cache.entries", 0 if cache is None else len(cache)),
            ("database.errors", responder.databaseErrors),
            ("pool.busy", 0 if pool is None else pool.busy),
            ("pool.size", 0 if pool is None else pool.size),
        ]
        return counters

    def line(self) -> str:
        """
        @return: the text of the C{STATS} reply: C{key=value} pairs.
        """
        return " ".join(f"{key}={value}" for key, value in self.counters())

    def status(self) -> str:
        """
        @return: a one-line summary of activity, for the service manager's
            C{STATUS=}: connections open, requests answered and how, the
            cache's hit ratio.
        """
        byResult = self.requestsByResult()
        total = sum(byResult.values())
        outcomes = ", ".join(f"{count} {result}" for result, count in byResult.items() if count)
        text = f"{len(self.factory.connections)} connections open; {total} requests"
        if outcomes:
            text += f" ({outcomes})"
        cache = self.factory.responder.cache
        if cache is not None and cache.hits + cache.misses:
            text += f"; cache hit ratio {cache.hits / (cache.hits + cache.misses):.0%}"
        return text

    def summary(self) -> str:
        """
        @return: what the daemon did since it started, for its stop line:
            the requests it answered, and those it read but dropped at the
            shutdown deadline, if any.
        """
        total = sum(self.requestsByResult().values())
        summary = f"{self.uptime():.1f} s: {total} requests on {self.factory.opened} connections"
        if self.factory.dropped:
            summary += f", {self.factory.dropped} requests dropped at shutdown"
        return summary

    def install(self) -> None:
        """
        Make C{STATS} answer with L{line}.
        """
        self.factory.responder.statistics = self.line
