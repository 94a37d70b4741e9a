"""
What C{--access-log} and C{--metrics} add to the daemon.
"""

from __future__ import annotations

import os
import sys

from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from avatard.ops.access import AccessLog, AccessLogService
from avatard.ops.hangup import ReopenOnHangup
from avatard.ops.metrics import (
    LatencyHistogram,
    MetricsService,
)
from avatard.request.observe import Observers
from avatard.tap import Options, makeService
from tests.helpers import (
    ThreadedMemoryReactor,
    options,
    tutorialDatabase,
)


class OptionTests(SynchronousTestCase):
    """
    C{--metrics} and the daemon's tree.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))

    def test_withoutTheLibrary(self) -> None:
        """
        Without prometheus_client installed, C{--metrics} is refused with
        one line saying what to install.
        """
        # None in sys.modules makes the import fail as if not installed.
        installed = sys.modules["prometheus_client"]
        sys.modules["prometheus_client"] = None  # type: ignore[assignment]
        self.addCleanup(sys.modules.__setitem__, "prometheus_client", installed)
        with self.assertRaises(usage.UsageError) as raised:
            Options().parseOptions(["--db", self.path, "--metrics", "tcp:9787"])
        self.assertEqual(
            str(raised.exception),
            "--metrics needs the prometheus_client package: pip install 'avatard[metrics]'",
        )

    def test_metricsServiceAndObserver(self) -> None:
        """
        C{--metrics} adds a metrics service listening where it says, and
        times every request; without it, neither.
        """
        reactor = ThreadedMemoryReactor()
        options = Options()
        options.parseOptions(["--db", self.path, "--metrics", "tcp:9787:interface=127.0.0.1"])
        service = makeService(options, reactor)
        metrics = service.getServiceNamed("metrics")
        self.assertIsInstance(metrics, MetricsService)
        self.assertIsInstance(service.server.factory.observer, LatencyHistogram)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertEqual(
            [(port, interface) for port, _, _, interface in reactor.tcpServers][-1], (9787, "127.0.0.1")
        )
        options = Options()
        options.parseOptions(["--db", self.path])
        self.assertIsNone(makeService(options, reactor).server.factory.observer)

    def test_unusableEndpoint(self) -> None:
        """
        A C{--metrics} no endpoint parser accepts ends the process with one
        line naming it.
        """
        options = Options()
        options.parseOptions(["--db", self.path, "--metrics", "carrier-pigeon:9"])
        with self.assertRaises(SystemExit) as raised:
            makeService(options, ThreadedMemoryReactor())
        self.assertIn("--metrics 'carrier-pigeon:9' cannot be used", str(raised.exception.code))


class OperationsWiringTests(SynchronousTestCase):
    """
    What C{--access-log} and C{--metrics} add to the tree, and the start
    line's settings.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()

    def test_accessLogFile(self) -> None:
        """
        C{--access-log PATH}: a file log observes requests, is reopened on
        SIGHUP and closed at stop.
        """
        log = os.path.abspath(self.mktemp())
        service = makeService(options("--db", self.path, "--access-log", log), self.reactor)
        observer = service.server.factory.observer
        assert isinstance(observer, AccessLog)
        self.addCleanup(observer.close)
        self.assertEqual(observer.path, log)
        self.assertIsInstance(service.getServiceNamed("access-log"), AccessLogService)
        hangup = service.getServiceNamed("reopen-on-hangup")
        assert isinstance(hangup, ReopenOnHangup)
        self.assertEqual(hangup.reopeners, [observer.reopen])

    def test_accessLogToMainLogWithMetrics(self) -> None:
        """
        C{--access-log -} with C{--metrics}: both observe every request.
        """
        service = makeService(
            options("--db", self.path, "--access-log", "-", "--metrics", "tcp:0"), self.reactor
        )
        observer = service.server.factory.observer
        assert isinstance(observer, Observers)
        self.assertEqual(
            [type(o).__name__ for o in observer.observers], ["MainLogAccessLog", "LatencyHistogram"]
        )

    def test_unopenableAccessLog(self) -> None:
        """
        An access log that cannot be opened ends the process with one line.
        """
        missing = os.path.join(os.path.abspath(self.mktemp()), "access.log")
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", self.path, "--access-log", missing), self.reactor)
        self.assertEqual(
            raised.exception.code,
            f"avatard: --access-log {missing!r} cannot be opened: No such file or directory",
        )

    def test_startLineNamesTheSettings(self) -> None:
        """
        The start line names the limits, timeouts and cache in force.
        """
        service = makeService(
            options("--db", self.path, "--port", "tcp:0", "--max-connections", "50", "--cache-size", "0"),
            self.reactor,
        )
        service.privilegedStartService()
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(
            events[-1]["details"],
            " (max-connections 50, max-per-ip none, max-line 1024, idle-timeout 60 s, "
            "query-timeout 3 s, no cache)",
        )
        with capturedLogs() as events:
            self.successResultOf(service.stopService())
        self.assertTrue(events[-1]["summary"].endswith(": 0 requests on 0 connections"))
