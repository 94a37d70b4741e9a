"""
L{avatard.workers.figures}: one C{/metrics} for the group, gathered from
every worker.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from avatard.ops.metrics import RENDERED_FOR
from avatard.workers.figures import (
    GroupCollector,
    GroupMetricsResource,
    Snapshot,
    gatherFrom,
    groupRegistry,
    snapshotOf,
)


class Fixed(Collector):
    def __init__(self, requests: float) -> None:
        self.requests = requests

    def collect(self) -> list[Metric]:
        counter = CounterMetricFamily("avatard_requests", "Requests.", labels=["command"])
        counter.add_metric(["WHO"], self.requests)
        return [counter, GaugeMetricFamily("avatard_connections_open", "Open.", 1)]


def snapshot(requests: float) -> Snapshot:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(requests))
    return snapshotOf(registry)


class GroupCollectorTests(SynchronousTestCase):
    def test_samplesLabelledWithTheirWorker(self) -> None:
        """
        Every worker's samples are in one family per metric, each with the
        label C{worker}.
        """
        collector = GroupCollector()
        collector.snapshots = {1: snapshot(3), 2: snapshot(5)}
        text = generate_latest(groupRegistry(collector)).decode()
        self.assertIn('avatard_requests_total{command="WHO",worker="1"} 3.0', text)
        self.assertIn('avatard_requests_total{command="WHO",worker="2"} 5.0', text)
        self.assertIn('avatard_connections_open{worker="2"} 1.0', text)
        self.assertEqual(text.count("# TYPE avatard_requests_total counter"), 1)


class FakeWorker:
    def __init__(self) -> None:
        self.asked: list[Deferred[Snapshot]] = []

    def askFigures(self) -> Deferred[Snapshot]:
        d: Deferred[Snapshot] = Deferred()
        self.asked.append(d)
        return d


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.workers = {1: FakeWorker(), 2: FakeWorker()}
        collector = GroupCollector()
        self.resource = GroupMetricsResource(
            groupRegistry(collector), collector, gatherFrom(lambda: self.workers, self.clock), self.clock
        )

    def get(self) -> DummyRequest:
        request = DummyRequest([b""])
        result = self.resource.render_GET(request)  # type: ignore[arg-type]
        if result != NOT_DONE_YET:
            assert isinstance(result, bytes)
            request.write(result)
            request.finish()
        return request

    def test_scrapesWaitForOneGathering(self) -> None:
        """
        A scrape asks every worker; one that comes meanwhile waits for the
        same answers; both are answered with every worker's figures once
        they have answered.
        """
        first, second = self.get(), self.get()
        self.assertEqual([len(w.asked) for w in self.workers.values()], [1, 1])
        self.assertEqual((first.finished, second.finished), (0, 0))
        self.workers[1].asked[0].callback(snapshot(3))
        self.assertEqual(first.finished, 0)
        self.workers[2].asked[0].callback(snapshot(5))
        for request in (first, second):
            self.assertEqual(request.finished, 1)
            text = b"".join(request.written).decode()
            self.assertIn('worker="1"', text)
            self.assertIn('worker="2"', text)

    def test_aSilentWorkerIsLeftOut(self) -> None:
        """
        A worker that does not answer within a second is left out of that
        scrape.
        """
        request = self.get()
        self.workers[1].asked[0].callback(snapshot(3))
        self.clock.advance(1)
        self.assertEqual(request.finished, 1)
        text = b"".join(request.written).decode()
        self.assertIn('worker="1"', text)
        self.assertNotIn('worker="2"', text)

    def test_aFreshRenderingIsShared(self) -> None:
        """
        Within L{RENDERED_FOR} seconds of a rendering, a scrape is answered
        at once, without asking the workers again.
        """
        self.get()
        for worker in self.workers.values():
            worker.asked[0].callback(snapshot(1))
        self.clock.advance(RENDERED_FOR / 2)
        self.assertEqual(self.get().finished, 1)
        self.assertEqual([len(w.asked) for w in self.workers.values()], [1, 1])
        self.clock.advance(RENDERED_FOR)
        self.assertEqual(self.get().finished, 0)
        self.assertEqual([len(w.asked) for w in self.workers.values()], [2, 2])

    def test_aScraperGoneIsNotAnswered(self) -> None:
        """
        A scrape whose client went away while the workers were asked is not
        written to; the others are answered.
        """
        gone, staying = self.get(), self.get()
        gone.processingFailed(Failure(ConnectionDone()))
        for worker in self.workers.values():
            worker.asked[0].callback(snapshot(1))
        self.assertEqual((gone.written, gone.finished), ([], 0))
        self.assertEqual(staying.finished, 1)
