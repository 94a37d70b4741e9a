"""
C{/metrics} in the Prometheus exposition format (C{--metrics ENDPOINT}).

Needs C{prometheus_client} (C{pip install 'avatard[metrics]'}), which only
this module imports.  Almost everything is read at scrape time from the
counters the daemon keeps anyway (L{avatard.ops.stats.Statistics}), by a
custom collector: serving requests costs nothing more.  The one exception
is the latency histogram, which needs each request's time: it is counted
into plain integers (L{LatencyHistogram}), one bisection and two additions
per request, and turned into a histogram at scrape time too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from avatard import __version__
from avatard.addresses import describeAddress
from avatard.ops.stats import FIGURES, Figure, Statistics
from avatard.protocol.admission import CappedFactory
from avatard.request.observe import IRequestObserver
from avatard.service.endpoint import EndpointService

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.metrics.MetricsService")

RENDERED_FOR = 1.0
"""
Seconds for which scrapes share one rendering of the metrics.
"""

SCRAPERS = 10
"""
Connections the metrics endpoint serves at once; more wait in the kernel's
listen queue.  Each scrape then costs the reactor a fraction of a
millisecond, and a crowd of them at most this many at a time, however many
arrive: the directory's clients are not held up by scrapes.
"""

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""
Upper bounds, in seconds, of the latency histogram's buckets: from a
cached reply (tens of microseconds) to a lookup at C{--query-timeout}.
"""


@implementer(IRequestObserver)
class LatencyHistogram:
    """
    Counts request latencies into buckets.

    @ivar counts: requests per bucket, not cumulative: C{counts[i]} holds
        those above C{bounds[i - 1]} and at most C{bounds[i]}; the last one
        those above every bound.
    @ivar sum: the total of every latency, in seconds.
    """

    def __init__(self, bounds: Sequence[float] = BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """
        @return: the buckets as Prometheus has them: cumulative counts by
            upper bound, C{+Inf} last.
        """
        buckets = []
        total = 0
        for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            buckets.append((bound, float(total)))
        return buckets


class AvatardCollector(Collector):
    """
    Reads the daemon's counters when Prometheus scrapes.
    """

    def __init__(self, statistics: Statistics, histogram: LatencyHistogram, backend: str) -> None:
        self.statistics = statistics
        self.histogram = histogram
        self.backend = backend

    def collect(self) -> Iterator[Metric]:
        statistics = self.statistics
        yield InfoMetricFamily(
            "avatard", "The avatard daemon.", value={"version": __version__, "backend": self.backend}
        )
        requests = CounterMetricFamily(
            "avatard_requests", "Requests answered, by command and result.", labels=["command", "result"]
        )
        for (command, result), count in sorted(statistics.counters.requestCounts().items()):
            requests.add_metric([command, result], count)
        yield requests
        yield HistogramMetricFamily(
            "avatard_request_duration_seconds",
            "Time from reading a request to knowing its reply.",
            buckets=self.histogram.cumulative(),
            sum_value=self.histogram.sum,
        )
        for figure in FIGURES:
            if not isinstance(figure, Figure) or figure.metric is None:
                continue
            if figure.ofPool and not statistics.hasPool:
                continue
            family = CounterMetricFamily if figure.kind == "counter" else GaugeMetricFamily
            yield family(figure.metric, figure.help, figure.read(statistics))


def metricsRegistry(collector: AvatardCollector) -> CollectorRegistry:
    """
    @return: a registry of C{collector} and the process, platform and
        garbage collector metrics, separate from the library's global one.
    """
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsResource(Resource):
    """
    C{GET /metrics}: the registry in the format the client asks for (the
    Prometheus text format, or OpenMetrics when C{Accept} asks for it).

    Rendering the registry costs the reactor about a millisecond; scrapes
    within L{RENDERED_FOR} seconds of a rendering in their format share it,
    so that a crowd of scrapes costs one rendering a second.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry, clock: IReactorTime) -> None:
        super().__init__()
        self.registry = registry
        self.clock = clock
        self.renderings = 0
        self._rendered: dict[str, tuple[float, bytes]] = {}

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader("accept") or ""
        encoder, contentType = choose_encoder(accept)
        request.setHeader("content-type", contentType)
        now = self.clock.seconds()
        rendered = self._rendered.get(contentType)
        if rendered is None or not 0 <= now - rendered[0] < RENDERED_FOR:
            rendered = (now, encoder(self.registry))
            self._rendered[contentType] = rendered
            self.renderings += 1
        return rendered[1]


class QuietSite(Site):
    """
    A site that does not log every scrape.
    """

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def metricsSite(registry: CollectorRegistry, reactor: Any, resource: Resource | None = None) -> QuietSite:
    """
    @param resource: what serves C{/metrics}: a L{MetricsResource} of
        C{registry} by default.
    @return: a site serving C{/metrics}, and nothing else (404).
    """
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry, reactor) if resource is None else resource)
    return QuietSite(root, reactor=reactor)


class MetricsService(EndpointService[CappedFactory]):
    """
    Serves C{/metrics} on an endpoint, to at most L{SCRAPERS} connections
    at once (L{CappedFactory}: the others wait), and says where once it
    listens.
    """

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        registry: CollectorRegistry,
        description: str,
        reactor: Any,
        resource: Resource | None = None,
    ) -> None:
        """
        @param resource: what serves C{/metrics}, as L{metricsSite} takes it.
        """
        site = metricsSite(registry, reactor, resource)
        super().__init__(endpoint, CappedFactory(site, SCRAPERS), description)
        self.name = "metrics"

    def startService(self) -> None:
        super().startService()
        self.whenListening().addCallback(self._serving)

    def _serving(self, port: IListeningPort) -> None:
        self.factory.listening(port)
        _log.info("Metrics at http://{where}/metrics", where=describeAddress(port.getHost()))
