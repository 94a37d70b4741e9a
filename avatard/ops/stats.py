"""
The daemon's figures, read when asked: by C{STATS}, the service manager's
C{STATUS=}, the stop line and C{/metrics}.

Nothing here runs per request.  Counts are made in L{Counters}; the state
worth showing beside them (users in the cache, pool threads) is read from its
owner when asked.  L{FIGURES} is the one list of what is reported: C{STATS}
names each figure by its key, C{/metrics} by its metric name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from avatard.counters import Counters


@dataclass(frozen=True)
class Figure:
    """
    One number the daemon reports.

    @ivar key: how C{STATS} names it, or L{None} when it does not.
    @ivar metric: how C{/metrics} names it (without a counter's
        C{_total}), or L{None} when it does not.
    @ivar kind: C{counter} or C{gauge}.
    @ivar help: what it is, for C{/metrics}.
    @ivar read: its value now.
    @ivar ofPool: whether it reports on the database pool, which
        C{/metrics} leaves out when there is none.
    """

    key: str | None
    metric: str | None
    kind: str
    help: str
    read: Callable[[Statistics], float]
    ofPool: bool = False


class Statistics:
    """
    The figures of one daemon.

    @ivar started: when the daemon started, as C{clock} counts.
    @ivar hasPool: whether there is a database pool to report on.
    @ivar worker: which worker of a group (C{--workers}) these are the
        figures of, which C{STATS} names last (C{worker=K}); L{None} for a
        single process, whose C{STATS} has no such key.
    """

    def __init__(
        self,
        clock: IReactorTime,
        counters: Counters,
        cacheEntries: Callable[[], int] | None = None,
        poolState: Callable[[], tuple[int, int]] | None = None,
        worker: int | None = None,
    ) -> None:
        self.worker = worker
        self.clock = clock
        self.counters = counters
        self._cacheEntries = cacheEntries
        self._poolState = poolState
        self.hasPool = poolState is not None
        self.started = clock.seconds()

    def uptime(self) -> float:
        """
        @return: seconds since the daemon started.
        """
        return self.clock.seconds() - self.started

    def cacheEntries(self) -> int:
        """
        @return: the users whose replies are cached now, found or not (0
            without a cache).
        """
        return 0 if self._cacheEntries is None else self._cacheEntries()

    def poolState(self) -> tuple[int, int]:
        """
        @return: the pool's threads running a query now, and the most it
            runs (0 and 0 without a pool).
        """
        return (0, 0) if self._poolState is None else self._poolState()

    def values(self) -> list[tuple[str, int | float]]:
        """
        @return: every figure C{STATS} reports, by key, in a fixed order.
        """
        values: list[tuple[str, int | float]] = [("uptime", round(self.uptime(), 3))]
        for figure in FIGURES:
            if figure == REQUESTS:
                values.extend(
                    (f"requests.{result}", count)
                    for result, count in self.counters.requestsByResult().items()
                )
            elif isinstance(figure, Figure) and figure.key is not None:
                values.append((figure.key, figure.read(self)))
        if self.worker is not None:
            values.append(("worker", self.worker))
        return values

    def line(self) -> str:
        """
        @return: the text of the C{STATS} reply: C{key=value} pairs.
        """
        return " ".join(f"{key}={value}" for key, value in self.values())

    def status(self) -> str:
        """
        @return: a one-line summary of activity, for the service manager's
            C{STATUS=}: connections open, requests answered and how, the
            cache's hit ratio.
        """
        counters = self.counters
        byResult = counters.requestsByResult()
        total = sum(byResult.values())
        outcomes = ", ".join(f"{count} {result}" for result, count in byResult.items() if count)
        text = f"{counters.connectionsOpen} connections open; {total} requests"
        if outcomes:
            text += f" ({outcomes})"
        if counters.cacheHits + counters.cacheMisses:
            text += f"; cache hit ratio {_hitRatio(self):.0%}"
        return text

    def summary(self) -> str:
        """
        @return: what the daemon did since it started, for its stop line:
            the requests it answered, and those it read but dropped at the
            shutdown deadline, if any.
        """
        counters = self.counters
        total = sum(counters.requestsByResult().values())
        summary = f"{self.uptime():.1f} s: {total} requests on {counters.connectionsOpened} connections"
        if counters.requestsDropped:
            summary += f", {counters.requestsDropped} requests dropped at shutdown"
        return summary


def _hitRatio(statistics: Statistics) -> float:
    counters = statistics.counters
    asked = counters.cacheHits + counters.cacheMisses
    return counters.cacheHits / asked if asked else 0.0


REQUESTS = "requests"
"""
Where in L{FIGURES} the requests by result come, in C{STATS}
(C{requests.<result>}); C{/metrics} counts them by command and result.
"""

FIGURES: tuple[Figure | str, ...] = (
    Figure(
        "connections.open",
        "avatard_connections_open",
        "gauge",
        "Connections open now.",
        lambda s: s.counters.connectionsOpen,
    ),
    Figure(
        "connections.total",
        "avatard_connections",
        "counter",
        "Connections accepted.",
        lambda s: s.counters.connectionsOpened,
    ),
    Figure(
        "connections.refused",
        "avatard_connections_refused",
        "counter",
        "Connections refused with ERR busy.",
        lambda s: s.counters.connectionsRefused,
    ),
    Figure(
        "connections.denied",
        "avatard_connections_denied",
        "counter",
        "Connections refused with ERR denied, from addresses outside --allow.",
        lambda s: s.counters.connectionsDenied,
    ),
    Figure(
        "connections.proxy-refused",
        "avatard_connections_proxy_refused",
        "counter",
        "Connections to a haproxy: port closed without a reply: their sender is outside --proxy-from.",
        lambda s: s.counters.proxyRefused,
    ),
    Figure(
        "connections.proxy-invalid",
        "avatard_connections_proxy_invalid",
        "counter",
        "Connections to a haproxy: port closed without a reply: no valid PROXY header in time.",
        lambda s: s.counters.proxyInvalid,
    ),
    REQUESTS,
    Figure(
        "requests.finger",
        # /metrics counts them in avatard_requests_total{command="finger"}.
        None,
        "counter",
        "Finger queries answered.",
        lambda s: s.counters.answered("finger"),
    ),
    Figure(
        "cache.hits",
        "avatard_cache_hits",
        "counter",
        "Requests answered from the cache.",
        lambda s: s.counters.cacheHits,
    ),
    Figure(
        "cache.misses",
        "avatard_cache_misses",
        "counter",
        "Lookups of the database made for want of a cached reply.",
        lambda s: s.counters.cacheMisses,
    ),
    Figure(
        None,
        "avatard_cache_hit_ratio",
        "gauge",
        "Share of cache hits among hits and misses since start (0 before any).",
        _hitRatio,
    ),
    Figure(
        "cache.entries",
        "avatard_cache_entries",
        "gauge",
        "Users whose replies the cache keeps now, found or not.",
        lambda s: s.cacheEntries(),
    ),
    Figure(
        "database.errors",
        "avatard_database_errors",
        "counter",
        "Lookups that failed or timed out.",
        lambda s: s.counters.databaseErrors,
    ),
    Figure(
        "pool.busy",
        "avatard_pool_threads_busy",
        "gauge",
        "Database pool threads running a query.",
        lambda s: s.poolState()[0],
        ofPool=True,
    ),
    Figure(
        "pool.size",
        "avatard_pool_threads_max",
        "gauge",
        "The most database pool threads.",
        lambda s: s.poolState()[1],
        ofPool=True,
    ),
)
"""
What the daemon reports, in C{STATS}'s order.
"""
