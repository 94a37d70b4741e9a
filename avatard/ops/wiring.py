"""
What operators add to the daemon, built before it: readiness
notification, the access log, metrics and log reopening, around the
request path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamServerEndpoint

from avatard.interfaces import IAvatarStore
from avatard.ops.access import AccessLog, AccessLogService, MainLogAccessLog
from avatard.ops.hangup import ReopenOnHangup
from avatard.ops.stats import Statistics
from avatard.ops.systemd import PROBE_LOGIN, INotifier, NotifyError, Readiness, SystemdNotifier
from avatard.request.observe import IRequestObserver, Observers


def readiness(
    reactor: Any,
    store: IAvatarStore,
    queryTimeout: float,
    statistics: Statistics,
    listening: Callable[[], Deferred[str]],
    notifier: INotifier | None = None,
) -> Readiness | None:
    """
    @return: the service that tells systemd the daemon is ready, stopping,
        and doing what, when systemd asks to be told (C{$NOTIFY_SOCKET});
        else L{None}.  Readiness waits for the listeners (C{listening}: where they listen), then
        for a lookup of L{PROBE_LOGIN} through C{store}: a real read of the
        database, within C{queryTimeout}.
    @param notifier: whom to tell, instead of systemd (a worker tells the
        twistd process, whatever the environment says).
    @raise SystemExit: when C{$NOTIFY_SOCKET} is unusable.
    """
    if notifier is None:
        notifier = systemdNotifier()
    if notifier is None:
        return None

    def probeDatabase() -> Deferred[object]:
        lookup = store.lookup(PROBE_LOGIN).addTimeout(queryTimeout, reactor)
        return lookup.addCallback(lambda found: found)

    return Readiness(notifier, probeDatabase, reactor, statistics.status, listening)


def systemdNotifier() -> SystemdNotifier | None:
    """
    @return: a notifier of systemd, when it asks to be told
        (C{$NOTIFY_SOCKET}); else L{None}.
    @raise SystemExit: when C{$NOTIFY_SOCKET} is unusable.
    """
    try:
        return SystemdNotifier.fromEnvironment()
    except NotifyError as e:
        raise SystemExit(f"avatard: {e}") from None


def observe(
    reactor: Any,
    statistics: Statistics,
    accessLog: str | None,
    metrics: tuple[IStreamServerEndpoint, str] | None,
    backend: str,
    exportMetrics: Callable[[Any], None] | None = None,
) -> tuple[IRequestObserver | None, list[IService]]:
    """
    The request observer for C{--access-log} and C{--metrics} (none without
    them), and the services they need.

    @param metrics: where to serve C{/metrics}: the endpoint and its
        description.
    @param backend: the kind of database (C{sqlite}), as metrics name it.
    @param exportMetrics: given the metrics registry, for a worker that
        does not serve it itself (C{metrics} is then L{None}).
    @return: what to tell about every request (L{None}: nothing), and the
        services to run beside the server: one that reopens log files on
        SIGHUP, and those of the access log and the metrics.
    @raise SystemExit: when the access log cannot be opened.
    """
    observers: list[IRequestObserver] = []
    helpers: list[IService] = []
    reopeners = []
    if accessLog == "-":
        observers.append(MainLogAccessLog())
    elif accessLog:
        try:
            fileLog = AccessLog(os.path.abspath(accessLog), reactor)
        except OSError as e:
            raise SystemExit(f"avatard: --access-log {accessLog!r} cannot be opened: {e.strerror}") from None
        observers.append(fileLog)
        reopeners.append(fileLog.reopen)
        helpers.append(AccessLogService(fileLog))
    helpers.append(ReopenOnHangup(reactor, reopeners))
    if metrics is not None:
        histogram, service = metricsService(*metrics, statistics, backend, reactor)
        observers.append(histogram)
        helpers.append(service)
    elif exportMetrics is not None:
        histogram, registry = metricsRegistryOf(statistics, backend)
        observers.append(histogram)
        exportMetrics(registry)
    if not observers:
        return None, helpers
    return observers[0] if len(observers) == 1 else Observers(observers), helpers


def metricsService(
    endpoint: IStreamServerEndpoint, description: str, statistics: Statistics, backend: str, reactor: Any
) -> tuple[IRequestObserver, IService]:
    """
    @return: the latency histogram to feed with every request, and the
        service that serves C{/metrics} on C{endpoint}.
    """
    # Only here: prometheus_client is needed for --metrics alone.
    from avatard.ops.metrics import MetricsService

    histogram, registry = metricsRegistryOf(statistics, backend)
    return histogram, MetricsService(endpoint, registry, description, reactor)


def metricsRegistryOf(statistics: Statistics, backend: str) -> tuple[IRequestObserver, Any]:
    """
    @return: the latency histogram to feed with every request, and the
        metrics registry that reports it with C{statistics}.
    """
    # Only here: prometheus_client is needed for --metrics alone.
    from avatard.ops.metrics import AvatardCollector, LatencyHistogram, metricsRegistry

    histogram = LatencyHistogram()
    return histogram, metricsRegistry(AvatardCollector(statistics, histogram, backend))
