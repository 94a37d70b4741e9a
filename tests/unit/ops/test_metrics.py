"""
L{avatard.ops.metrics}: what C{/metrics} holds, read at scrape time, and
in which format.
"""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from avatard.counters import Counters
from avatard.networks import Networks
from avatard.ops.metrics import (
    AvatardCollector,
    LatencyHistogram,
    MetricsResource,
    metricsRegistry,
)
from avatard.ops.stats import Statistics
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.rates import Rate
from avatard.request.cache import ReplyCache
from avatard.request.observe import IRequestObserver
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import Connection, DictStore, samples


class LatencyHistogramTests(SynchronousTestCase):
    """
    L{LatencyHistogram}: plain integer buckets, cumulative when read.
    """

    def test_buckets(self) -> None:
        """
        Each latency counts in the first bucket whose bound it does not
        exceed (a bound is inclusive); longer ones in C{+Inf}.
        """
        histogram = LatencyHistogram([0.001, 0.01])
        self.assertTrue(verifyObject(IRequestObserver, histogram))
        for seconds in (0.0005, 0.001, 0.002, 0.5):
            histogram.requestAnswered("-", "PING", "ok", b"PING", seconds)
        self.assertEqual(histogram.counts, [2, 1, 1])
        self.assertEqual(histogram.cumulative(), [("0.001", 2.0), ("0.01", 3.0), ("+Inf", 4.0)])
        self.assertAlmostEqual(histogram.sum, 0.5035)


class CollectorTests(SynchronousTestCase):
    """
    L{AvatardCollector} reads the daemon's counters when scraped.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = DictStore()
        counters = Counters()
        cache = ReplyCache(self.clock, 100, 10.0, counters)
        self.histogram = LatencyHistogram()
        self.factory = WhoFactory(
            Responder(self.store, ClassicRenderer(), self.clock, 3.0, cache, counters),
            self.clock,
            observer=self.histogram,
            timer=self.clock.seconds,
        )
        statistics = Statistics(self.clock, counters, cache.__len__, lambda: (0, 1))
        self.registry = metricsRegistry(AvatardCollector(statistics, self.histogram, "sqlite"))

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples(generate_latest(self.registry).decode("utf-8"))

    def test_countersMoveBetweenScrapes(self) -> None:
        """
        Requests by command and result, latency, connections, cache,
        database errors and pool state, as they are at each scrape.
        """
        before = self.scrape()
        self.assertEqual(before["avatard_connections_open", ()], 0)
        self.assertEqual(before["avatard_request_duration_seconds_count", ()], 0)
        self.assertEqual(before["avatard_info", (("backend", "sqlite"), ("version", "0.1.0"))], 1)
        c = Connection(self.factory)
        c.send(b"WHO yoen\nWHO yoen\nWHO yoen\nWHO nobody\nPING\nFROB\n")
        self.store.error = OSError("gone")
        c.send(b"WHO esteban\n")
        after = self.scrape()
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "ok"))], 3)
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "not-found"))], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "unavailable"))], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "PING"), ("result", "ok"))], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "-"), ("result", "bad-request"))], 1)
        self.assertEqual(after["avatard_request_duration_seconds_count", ()], 7)
        self.assertEqual(after["avatard_request_duration_seconds_bucket", (("le", "0.0001"),)], 7)
        self.assertEqual(after["avatard_connections_open", ()], 1)
        self.assertEqual(after["avatard_connections_total", ()], 1)
        self.assertEqual(after["avatard_cache_hits_total", ()], 2)
        self.assertEqual(after["avatard_cache_misses_total", ()], 3)
        self.assertEqual(after["avatard_cache_hit_ratio", ()], 0.4)
        self.assertEqual(after["avatard_database_errors_total", ()], 1)
        self.assertEqual(after["avatard_pool_threads_busy", ()], 0)
        self.assertEqual(after["avatard_pool_threads_max", ()], 1)
        self.assertIn(("process_resident_memory_bytes", ()), after)

    def test_deniedConnectionsAndRequestsPastTheBudget(self) -> None:
        """
        Connections denied by C{--allow} are counted in
        C{avatard_connections_denied_total}; requests past a budget under
        their command, with the result C{rate-limit}.
        """
        counters = Counters()
        limits = Limits(allow=Networks.parse(["192.0.2.0/24"]), rate=Rate(1, 60))
        factory = WhoFactory(
            Responder(self.store, ClassicRenderer(), self.clock, 3.0, None, counters), self.clock, limits
        )
        statistics = Statistics(self.clock, counters)
        registry = metricsRegistry(AvatardCollector(statistics, self.histogram, "sqlite"))
        self.assertEqual(
            samples(generate_latest(registry).decode())["avatard_connections_denied_total", ()], 0
        )
        with capturedLogs():
            factory.buildProtocol(IPv4Address("TCP", "198.51.100.1", 1))
        Connection(factory).send(b"PING\nWHO yoen\n")
        after = samples(generate_latest(registry).decode())
        self.assertEqual(after["avatard_connections_denied_total", ()], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "rate-limit"))], 1)

    def test_jsonRequestsAreLabelledJSON(self) -> None:
        """
        C{JSON} requests are counted under C{command="JSON"}, those answered
        from the cache too, and never under C{WHO}.
        """
        c = Connection(self.factory)
        c.send(b"JSON yoen\nJSON yoen\nJSON nobody\nJSON nobody\nJSON\nWHO yoen\n")
        after = self.scrape()
        self.assertEqual(after["avatard_requests_total", (("command", "JSON"), ("result", "ok"))], 2)
        self.assertEqual(after["avatard_requests_total", (("command", "JSON"), ("result", "not-found"))], 2)
        self.assertEqual(after["avatard_requests_total", (("command", "JSON"), ("result", "bad-request"))], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "ok"))], 1)
        self.assertNotIn(("avatard_requests_total", (("command", "WHO"), ("result", "not-found"))), after)
        self.assertEqual(after["avatard_cache_hits_total", ()], 2)

    def test_resource(self) -> None:
        """
        C{GET /metrics} answers the text format, or OpenMetrics when the
        client asks for it.
        """
        resource = MetricsResource(self.registry, Clock())
        request = DummyRequest([b""])
        body = resource.render_GET(request)  # type: ignore[arg-type]
        [contentType] = request.responseHeaders.getRawHeaders("content-type", [])
        self.assertEqual(contentType.split(";")[0], "text/plain")
        self.assertIn(("avatard_connections_open", ()), samples(body.decode()))
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders("accept", ["application/openmetrics-text; version=1.0.0"])
        body = resource.render_GET(request)  # type: ignore[arg-type]
        self.assertTrue(body.endswith(b"# EOF\n"))

    def test_scrapesWithinASecondShareOneRendering(self) -> None:
        """
        Scrapes within a second of a rendering in their format get that
        rendering, counters as they were then; the first scrape a second
        or more later renders again.
        """
        clock = Clock()
        resource = MetricsResource(self.registry, clock)

        def scrape(accept: str = "") -> bytes:
            request = DummyRequest([b""])
            if accept:
                request.requestHeaders.setRawHeaders("accept", [accept])
            return resource.render_GET(request)  # type: ignore[arg-type]

        first = scrape()
        self.assertEqual(resource.renderings, 1)
        Connection(self.factory).send(b"PING\n")
        clock.advance(0.999)
        self.assertIs(scrape(), first)
        self.assertEqual(resource.renderings, 1)
        openMetrics = scrape("application/openmetrics-text; version=1.0.0")
        self.assertTrue(openMetrics.endswith(b"# EOF\n"))
        self.assertEqual(resource.renderings, 2)
        clock.advance(0.001)
        again = scrape()
        self.assertEqual(resource.renderings, 3)
        key = ("avatard_requests_total", (("command", "PING"), ("result", "ok")))
        self.assertNotIn(key, samples(first.decode()))
        self.assertEqual(samples(again.decode())[key], 1)
