"""
L{avatard.ops.wiring}: what C{--access-log} and C{--metrics} add to the
daemon, as a client, an operator and a scraper see it.
"""

from __future__ import annotations

import contextlib
import os
import signal

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from avatard.service.tree import AvatardService
from avatard.tap import makeService, serviceTree
from tests.helpers import (
    Connection,
    ThreadedMemoryReactor,
    options,
    samples,
    tutorialDatabase,
)


def openFiles() -> set[str]:
    """
    @return: the paths of the files this process has open.
    """
    descriptors = "/proc/self/fd"
    paths = set()
    for fd in os.listdir(descriptors):
        # The directory's own descriptor is closed once it is listed.
        with contextlib.suppress(OSError):
            paths.add(os.readlink(os.path.join(descriptors, fd)))
    return paths


def scrape(reactor: ThreadedMemoryReactor, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    C{GET /metrics} from what listens on TCP port C{port} of C{reactor}.

    @return: every sample's value by name and sorted labels.
    """
    [factory] = [factory for number, factory, _, _ in reactor.tcpServers if number == port]
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    assert protocol is not None
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET /metrics HTTP/1.0\r\n\r\n")
    response = transport.value().decode("utf-8")
    head, _, body = response.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200 "), head
    return samples(body)


class AccessLogTests(SynchronousTestCase):
    """
    C{--access-log}: one line per request, in a file or in the daemon's own
    log.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()

    def start(self, *argv: str) -> tuple[AvatardService, Connection]:
        """
        Start the daemon with C{argv}, and connect a client to it.
        """
        service = serviceTree(options("--db", self.path, "--port", "tcp:0", *argv), self.reactor)
        service.privilegedStartService()
        with capturedLogs():
            service.startService()
        return service, Connection(self.reactor.listened(0))

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_accessLogFile(self) -> None:
        """
        C{--access-log PATH}: each request is written to the file; SIGHUP
        reopens it, so that after a rename new lines go to a new file at
        the path; stopping writes what is left and closes the file.
        """
        log = os.path.abspath(self.mktemp())
        service, client = self.start("--access-log", log)
        client.send(b"PING\n")
        self.reactor.advance(0)
        self.assertIn('"PING"', self.read(log))
        os.rename(log, log + ".1")
        hangup = signal.getsignal(signal.SIGHUP)
        assert callable(hangup)
        with capturedLogs():
            hangup(signal.SIGHUP, None)
            self.reactor.runUntil(lambda: os.path.exists(log))
        client.send(b"HELP\n")
        self.reactor.advance(0)
        client.send(b"STATS\n")
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())
        self.assertNotIn('"HELP"', self.read(log + ".1"))
        self.assertIn('"HELP"', self.read(log))
        self.assertIn('"STATS"', self.read(log))
        self.assertNotIn(log, openFiles())

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

    def test_accessLogToMainLogWithMetrics(self) -> None:
        """
        C{--access-log -} with C{--metrics}: every request is both in the
        daemon's own log and in the metrics.
        """
        service, client = self.start("--access-log", "-", "--metrics", "tcp:9787")
        with capturedLogs() as events:
            client.send(b"PING\nWHO nobody\n")
        self.assertEqual(
            [
                event["request"].split(" ")[1:3]
                for event in events
                if event["log_namespace"] == "avatard.access"
            ],
            [["PING", "ok"], ["WHO", "not-found"]],
        )
        self.assertEqual(scrape(self.reactor, 9787)["avatard_request_duration_seconds_count", ()], 2)
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())


class MetricsTests(SynchronousTestCase):
    """
    C{--metrics}: where the metrics are served, and what they time.
    """

    def test_metricsAreServedWhereTheOptionSays(self) -> None:
        """
        C{--metrics} serves C{/metrics} where it says, and times every
        request, and says where in a line named C{avatard.metrics.MetricsService};
        without it, the daemon listens on its own port alone.
        """
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        reactor = ThreadedMemoryReactor()
        service = makeService(
            options("--db", path, "--port", "tcp:8787", "--metrics", "tcp:9787:interface=127.0.0.1"), reactor
        )
        service.privilegedStartService()
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(
            [(port, interface) for port, _, _, interface in reactor.tcpServers][-1], (9787, "127.0.0.1")
        )
        self.assertEqual(
            [e["log_namespace"] for e in events if formatEvent(e).startswith("Metrics at http://")],
            ["avatard.metrics.MetricsService"],
        )
        self.assertEqual(scrape(reactor, 9787)["avatard_request_duration_seconds_count", ()], 0)
        client = Connection(reactor.listened(0))
        client.send(b"WHO yoen\n")
        # Past the second for which scrapes share a rendering.
        reactor.advance(1)
        self.assertEqual(scrape(reactor, 9787)["avatard_request_duration_seconds_count", ()], 1)
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())
        reactor = ThreadedMemoryReactor()
        service = makeService(options("--db", path, "--port", "tcp:8787"), reactor)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertEqual([port for port, _, _, _ in reactor.tcpServers], [8787])
