"""
L{avatard.ops.stats}: C{STATS} and the counters behind it (requests by
result, connections, the cache, database errors and the pool), and the
one-line summaries for the service manager and the stop line.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from avatard.counters import RESULTS, Counters
from avatard.networks import Networks
from avatard.ops.stats import Statistics
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.rates import Rate
from avatard.request.cache import ReplyCache
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import Connection, ControlledStore, DictStore, parseStats


class StatsCommandTests(SynchronousTestCase):
    """
    C{STATS} through a connection.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = DictStore()
        self.counters = Counters()
        self.cache = ReplyCache(self.clock, 100, 10.0, self.counters)
        self.statistics = Statistics(self.clock, self.counters, self.cache.__len__)
        self.responder = Responder(
            self.store, ClassicRenderer(), self.clock, 3.0, self.cache, self.counters, self.statistics.line
        )
        self.factory = WhoFactory(self.responder, self.clock, Limits(maxLine=64, maxConnections=3))

    def stats(self, c: Connection) -> dict[str, float]:
        c.received()
        c.send(b"STATS\n")
        return parseStats(c.received())

    def test_everyCounterIsThereFromTheStart(self) -> None:
        """
        A fresh daemon answers every counter, each 0 but its own request.
        """
        c = Connection(self.factory)
        self.clock.advance(12.5)
        self.assertEqual(
            self.stats(c),
            {
                "uptime": 12.5,
                "connections.open": 1,
                "connections.total": 1,
                "connections.refused": 0,
                "connections.denied": 0,
                "connections.proxy-refused": 0,
                "connections.proxy-invalid": 0,
                **{f"requests.{result}": 0 for result in RESULTS},
                # STATS counts itself.
                "requests.ok": 1,
                "requests.finger": 0,
                "cache.hits": 0,
                "cache.misses": 0,
                "cache.entries": 0,
                "database.errors": 0,
                "pool.busy": 0,
                "pool.size": 0,
            },
        )

    def test_countersMoveWithRequests(self) -> None:
        """
        Each request counts once under its result; cached replies, found
        and not found, count as the lookups they stand for; a cache miss is
        a lookup begun (a login refused before any lookup is none).
        """
        c = Connection(self.factory)
        c.send(b"WHO yoen\nWHO yoen\nWHO nobody\nWHO nobody\nPING\nFROB\nWHO a@b\n\xff\n\n")
        stats = self.stats(c)
        self.assertEqual(stats["requests.ok"], 4)
        self.assertEqual(stats["requests.not-found"], 2)
        self.assertEqual(stats["requests.bad-request"], 4)
        self.assertEqual((stats["cache.hits"], stats["cache.misses"], stats["cache.entries"]), (2, 2, 2))
        self.store.error = OSError("disk on fire")
        with capturedLogs():
            c.send(b"WHO esteban\n")
        stats = self.stats(c)
        self.assertEqual((stats["requests.unavailable"], stats["database.errors"]), (1, 1))
        self.assertEqual(stats["requests.ok"], 5)

    def test_connectionCountsAndRefusals(self) -> None:
        """
        Open and total connections, and refusals counted as C{busy} replies.
        """
        first = Connection(self.factory)
        Connection(self.factory).lose()
        Connection(self.factory)
        Connection(self.factory)
        refused = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 1))
        refused.makeConnection(StringTransport())
        stats = self.stats(first)
        self.assertEqual(
            (stats["connections.open"], stats["connections.total"], stats["connections.refused"]), (3, 4, 1)
        )
        self.assertEqual(stats["requests.busy"], 1)

    def test_denialsAndRequestsPastTheBudget(self) -> None:
        """
        Connections denied by C{--allow} count in C{connections.denied},
        not as refused; requests past a budget in C{requests.rate-limit}.
        """
        limits = Limits(allow=Networks.parse(["192.0.2.0/24"]), rate=Rate(2, 60))
        factory = WhoFactory(self.responder, self.clock, limits)
        with capturedLogs():
            factory.buildProtocol(IPv4Address("TCP", "198.51.100.1", 1))
            factory.buildProtocol(IPv4Address("TCP", "198.51.100.2", 1))
        Connection(factory).send(b"PING\nPING\nPING\n")
        stats = self.stats(Connection(factory, UNIXAddress(None)))  # type: ignore[arg-type]
        self.assertEqual((stats["connections.denied"], stats["connections.refused"]), (2, 0))
        self.assertEqual((stats["requests.rate-limit"], stats["requests.ok"]), (1, 3))

    def test_tooLongAndTimeoutAreCounted(self) -> None:
        """
        Replies sent without a request read, C{too-long} and C{timeout},
        are counted, once each.
        """
        factory = WhoFactory(self.responder, self.clock, Limits(maxLine=64))
        Connection(factory).send(b"x" * 100 + b"\n" + b"y" * 100 + b"\n")
        Connection(factory).send(b"z" * 200)
        Connection(factory)
        self.clock.advance(factory.limits.idleTimeout)
        self.clock.advance(factory.limits.idleTimeout)
        stats = self.stats(Connection(factory))
        self.assertEqual((stats["requests.too-long"], stats["requests.timeout"]), (2, 1))

    def test_statsTakesNoArgument(self) -> None:
        """
        C{STATS} with an argument is a bad request, as C{PING}'s is.
        """
        c = Connection(self.factory)
        c.send(b"STATS connections\n")
        self.assertEqual(c.received(), b"ERR bad-request this command takes no argument\r\n")
        self.assertEqual(self.stats(c)["requests.bad-request"], 1)

    def test_pendingLookupIsNotCountedYet(self) -> None:
        """
        A request still waiting for the database has no result yet.
        """
        clock = Clock()
        store = ControlledStore()
        factory = WhoFactory(Responder(store, ClassicRenderer(), clock), clock)
        Connection(factory).send(b"WHO yoen\n")
        self.assertEqual(factory.counters.requestCounts(), {})
        store.answer(0, None)
        self.assertEqual(factory.counters.requestCounts(), {("WHO", "not-found"): 1})


class PoolStateTests(SynchronousTestCase):
    """
    The database pool's state, as the storage reports it.
    """

    def test_poolState(self) -> None:
        """
        C{pool.busy} and C{pool.size} are what the pool state reports now;
        without a pool, both are 0.
        """
        clock = Clock()
        state = [(0, 1)]
        values = dict(Statistics(clock, Counters(), poolState=lambda: state[0]).values())
        self.assertEqual((values["pool.busy"], values["pool.size"]), (0, 1))
        state[0] = (3, 4)
        values = dict(Statistics(clock, Counters(), poolState=lambda: state[0]).values())
        self.assertEqual((values["pool.busy"], values["pool.size"]), (3, 4))
        values = dict(Statistics(clock, Counters()).values())
        self.assertEqual((values["pool.busy"], values["pool.size"]), (0, 0))


class SummaryTests(SynchronousTestCase):
    """
    The one-line summaries for the service manager and the stop line.
    """

    def test_statusAndSummary(self) -> None:
        """
        STATUS= names open connections, requests by result (only those
        that occurred) and the cache hit ratio; the stop line the uptime,
        requests and connections.
        """
        clock = Clock()
        counters = Counters()
        cache = ReplyCache(clock, 100, 10.0, counters)
        factory = WhoFactory(Responder(DictStore(), ClassicRenderer(), clock, 3.0, cache, counters), clock)
        statistics = Statistics(clock, counters)
        self.assertEqual(statistics.status(), "0 connections open; 0 requests")
        Connection(factory).send(b"WHO yoen\nWHO yoen\nWHO yoen\nWHO nobody\nFROB\n")
        clock.advance(30)
        self.assertEqual(
            statistics.status(),
            "1 connections open; 5 requests (3 ok, 1 not-found, 1 bad-request); cache hit ratio 50%",
        )
        self.assertEqual(statistics.summary(), "30.0 s: 5 requests on 1 connections")

    def test_summaryCountsRequestsDroppedAtShutdown(self) -> None:
        """
        The stop line also counts the requests read but dropped at the
        shutdown deadline, when there are any.
        """
        clock = Clock()
        store = ControlledStore()
        factory = WhoFactory(Responder(store, ClassicRenderer(), clock, 30.0), clock)
        statistics = Statistics(clock, factory.counters)
        Connection(factory).send(b"WHO yoen\nWHO esteban\n")
        factory.drain(5)
        clock.advance(5)
        self.assertEqual(
            statistics.summary(), "5.0 s: 0 requests on 1 connections, 2 requests dropped at shutdown"
        )


class WorkerKeyTests(SynchronousTestCase):
    """
    C{worker=K}: which worker of a group answered C{STATS}.
    """

    def test_aWorkerNamesItselfLast(self) -> None:
        """
        A worker's C{STATS} ends with C{worker=K}.
        """
        line = Statistics(Clock(), Counters(), worker=3).line()
        self.assertTrue(line.endswith(" worker=3"), line)
        self.assertEqual(line.count("worker="), 1)

    def test_aSingleProcessHasNoWorkerKey(self) -> None:
        """
        A single process (C{--workers 1}) is no worker: its C{STATS} is as
        before, without the key.
        """
        self.assertNotIn("worker", Statistics(Clock(), Counters()).line())
