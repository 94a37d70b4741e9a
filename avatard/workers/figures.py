"""
C{/metrics} for a group of workers: the twistd process gathers every
worker's metrics over its pipe when scraped, and serves them as one
scrape, each sample labelled with its C{worker}.

Each worker keeps the registry a single process would serve (the daemon's
collector, the process, platform and garbage collector metrics): every
metric a single process reports is reported for each worker, under the
same name.  prometheus_client's own multiprocess mode was not used: it
keeps only metrics counted in its shared files, so the daemon's collector
(its figures read at scrape time) and the process metrics would be lost.
Needs C{prometheus_client}, as L{avatard.ops.metrics} does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from avatard.ops.metrics import RENDERED_FOR, MetricsResource

GATHER_TIMEOUT = 1.0
"""
Seconds a scrape waits for a worker's metrics; a worker that has not
answered by then is left out of that scrape.
"""

Snapshot = list[list[Any]]
"""
A worker's metrics, as it sends them: per family, its name,
documentation, type, unit and samples (name, labels, value).
"""


def snapshotOf(registry: CollectorRegistry | None) -> Snapshot:
    """
    @return: what C{registry} reports now, as a worker sends it.
    """
    if registry is None:
        return []
    return [
        [
            family.name,
            family.documentation,
            family.type,
            family.unit,
            [[s.name, s.labels, s.value] for s in family.samples],
        ]
        for family in registry.collect()
    ]


class GroupCollector(Collector):
    """
    Reports the workers' last gathered metrics, each sample with the
    label C{worker} naming its worker.

    @ivar snapshots: each worker's metrics, by its index.
    """

    def __init__(self) -> None:
        self.snapshots: dict[int, Snapshot] = {}

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for worker, snapshot in sorted(self.snapshots.items()):
            for name, documentation, kind, unit, samples in snapshot:
                family = families.get(name)
                if family is None:
                    family = families[name] = Metric(name, documentation, kind, unit)
                for sample, labels, value in samples:
                    family.add_sample(sample, {**labels, "worker": str(worker)}, value)
        yield from families.values()


def groupRegistry(collector: GroupCollector) -> CollectorRegistry:
    """
    @return: a registry of C{collector} alone.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def gatherFrom(
    workers: Callable[[], Mapping[int, Any]], clock: IReactorTime
) -> Callable[[], Deferred[dict[int, Snapshot]]]:
    """
    @param workers: the running workers by index, each with C{askFigures}.
    @return: what gathers their metrics, within L{GATHER_TIMEOUT} seconds.
    """

    def gather() -> Deferred[dict[int, Snapshot]]:
        gathered: dict[int, Snapshot] = {}
        asked = []
        for index, worker in sorted(workers().items()):
            d = worker.askFigures().addTimeout(GATHER_TIMEOUT, clock)
            d.addCallback(lambda snapshot, index=index: gathered.__setitem__(index, snapshot))
            d.addErrback(lambda _: None)
            asked.append(d)
        return gatherResults(asked).addCallback(lambda _: gathered)

    return gather


class GroupMetricsResource(MetricsResource):
    """
    C{GET /metrics} for a group: a scrape that finds no rendering fresh
    enough (L{RENDERED_FOR}) waits for the workers' metrics to be
    gathered (C{gather}); scrapes that come meanwhile wait for the same
    gathering.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        collector: GroupCollector,
        gather: Callable[[], Deferred[dict[int, Snapshot]]],
        clock: IReactorTime,
    ) -> None:
        super().__init__(registry, clock)
        self.collector = collector
        self.gather = gather
        self._waiting: list[Request] = []
        self._gone: set[Request] = set()

    def _fresh(self, request: Request) -> bool:
        from prometheus_client.exposition import choose_encoder

        _, contentType = choose_encoder(request.getHeader("accept") or "")
        rendered = self._rendered.get(contentType)
        return rendered is not None and 0 <= self.clock.seconds() - rendered[0] < RENDERED_FOR

    # NOT_DONE_YET (an int) where the base class always has the bytes.
    def render_GET(self, request: Request) -> bytes | int:  # type: ignore[override]
        if self._fresh(request):
            return super().render_GET(request)
        self._waiting.append(request)
        request.notifyFinish().addErrback(lambda _: self._gone.add(request))
        if len(self._waiting) == 1:
            self.gather().addCallbacks(self._gathered, self._failed)
        return NOT_DONE_YET

    def _gathered(self, snapshots: dict[int, Snapshot]) -> None:
        self.collector.snapshots = snapshots
        self._rendered.clear()
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            if request in self._gone:
                continue
            request.write(super().render_GET(request))
            request.finish()
        self._gone.clear()

    def _failed(self, failure: Failure) -> None:
        self._gathered({})
