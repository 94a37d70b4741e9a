"""
L{avatard.ops.systemd}: the readiness protocol: what is sent to the
service manager, and when.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.ops.systemd import (
    PROBE_RETRY,
    STATUS_INTERVAL,
    INotifier,
    NotifyError,
    Readiness,
    SystemdNotifier,
    notifyAddress,
)
from avatard.tap import Options, makeService
from tests.helpers import NotifySocket, ThreadedMemoryReactor, options, tutorialDatabase


@implementer(INotifier)
class RecordingNotifier:
    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []

    def notify(self, assignments: object) -> None:
        assert isinstance(assignments, dict)
        self.messages.append(dict(assignments))

    def sent(self, key: str) -> list[str]:
        return [message[key] for message in self.messages if key in message]


class NotifyAddressTests(SynchronousTestCase):
    """
    C{$NOTIFY_SOCKET}: a path or an abstract name.
    """

    def test_providers(self) -> None:
        """
        The real and the fake notifier provide L{INotifier}.
        """
        self.assertTrue(verifyObject(INotifier, SystemdNotifier("/run/systemd/notify")))
        self.assertTrue(verifyObject(INotifier, RecordingNotifier()))

    def test_pathAndAbstractName(self) -> None:
        """
        A path is used as it is; a leading C{@} names an abstract socket.
        """
        self.assertEqual(notifyAddress("/run/systemd/notify"), "/run/systemd/notify")
        self.assertEqual(
            notifyAddress("@/org/freedesktop/systemd1/notify/123"), "\0/org/freedesktop/systemd1/notify/123"
        )

    def test_anythingElseIsRefused(self) -> None:
        """
        A relative path, a bare C{@} or a socket type that is not supported is
        refused by name.
        """
        for value in ("notify", "@", "vsock:2:1234"):
            with self.assertRaises(NotifyError) as raised:
                notifyAddress(value)
            self.assertIn(repr(value), str(raised.exception))

    def test_fromEnvironment(self) -> None:
        """
        No C{NOTIFY_SOCKET} (or an empty one), no notifier.
        """
        self.assertIsNone(SystemdNotifier.fromEnvironment({}))
        self.assertIsNone(SystemdNotifier.fromEnvironment({"NOTIFY_SOCKET": ""}))
        notifier = SystemdNotifier.fromEnvironment({"NOTIFY_SOCKET": "@n"})
        assert notifier is not None
        self.assertEqual(notifier.address, "\0n")

    def test_unreachableManagerIsLoggedOnce(self) -> None:
        """
        A socket nobody listens on: notifications are dropped, with one
        warning, not one per notification, and nothing raised.
        """
        notifier = SystemdNotifier("\0avatard-test-nobody-listens-" + str(os.getpid()))
        with capturedLogs() as events:
            notifier.notify({"STATUS": "one"})
            notifier.notify({"STATUS": "two"})
        self.assertEqual(len(events), 1)
        self.assertIn("Cannot notify the service manager", events[0]["log_format"])
        self.assertEqual(events[0]["log_namespace"], "avatard.systemd.SystemdNotifier")


def notListening() -> Deferred[str]:
    """
    @return: listeners that never come up: the tests say when the daemon
        serves.
    """
    return Deferred()


class ReadinessTests(SynchronousTestCase):
    """
    L{Readiness}: READY=1 only once listening and the database answered.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.notifier = RecordingNotifier()
        self.probes: list[Deferred[object]] = []
        self.readiness = Readiness(
            self.notifier, self.probe, self.clock, lambda: "3 connections open", notListening
        )

    def probe(self) -> Deferred[object]:
        d: Deferred[object] = Deferred()
        self.probes.append(d)
        return d

    def test_readyOnlyOnceTheDatabaseAnswers(self) -> None:
        """
        Listening is not enough: READY=1 waits for the probe.
        """
        self.readiness.serving("127.0.0.1:8787")
        self.assertEqual(self.notifier.sent("READY"), [])
        self.assertEqual(
            self.notifier.sent("STATUS"), ["Checking the database before serving on 127.0.0.1:8787"]
        )
        self.probes[0].callback(None)
        self.assertEqual(self.notifier.sent("READY"), ["1"])
        self.assertEqual(
            self.notifier.messages[-1]["STATUS"], "Serving on 127.0.0.1:8787: 3 connections open"
        )
        self.assertTrue(self.readiness.ready)

    def test_probeRetriedUntilItSucceeds(self) -> None:
        """
        A failed probe is logged once, shown in STATUS and retried every
        L{PROBE_RETRY} seconds; READY=1 follows the first success.
        """
        self.readiness.serving("127.0.0.1:8787")
        with capturedLogs() as events:
            self.probes[0].errback(OSError("disk\x1b[31m on fire"))
            self.clock.advance(PROBE_RETRY)
            self.probes[1].errback(OSError("disk on fire"))
            self.assertEqual(self.notifier.sent("READY"), [])
            self.clock.advance(PROBE_RETRY)
            self.probes[2].callback(None)
        self.assertEqual(len(self.probes), 3)
        self.assertEqual(self.notifier.sent("READY"), ["1"])
        self.assertIn(
            "Waiting for the database to answer: disk\\x1b[31m on fire", self.notifier.sent("STATUS")
        )
        self.assertEqual(
            [e["log_format"].split(":")[0] for e in events], ["Not ready", "The database answers"]
        )
        self.assertEqual({e["log_namespace"] for e in events}, {"avatard.systemd.Readiness"})

    def test_statusIsRefreshedWhileServing(self) -> None:
        """
        STATUS= is sent again every L{STATUS_INTERVAL} seconds while serving.
        """
        self.readiness.serving("unix:/run/avatard.sock")
        self.probes[0].callback(None)
        before = len(self.notifier.messages)
        self.clock.advance(STATUS_INTERVAL)
        self.clock.advance(STATUS_INTERVAL)
        self.assertEqual(len(self.notifier.messages), before + 2)

    def test_stoppingIsSentAndEverythingStops(self) -> None:
        """
        STOPPING=1 at the start of the stop; no probe, retry or update after.
        """
        self.readiness.serving("127.0.0.1:8787")
        with capturedLogs():
            self.probes[0].errback(OSError("down"))
        self.readiness.stopping()
        self.assertEqual(self.notifier.sent("STOPPING"), ["1"])
        count = len(self.notifier.messages)
        self.clock.advance(STATUS_INTERVAL * 3)
        self.assertEqual((len(self.probes), len(self.notifier.messages)), (1, count))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stoppingWhileProbingCancelsTheProbe(self) -> None:
        """
        A probe still running when the stop begins is cancelled, and no
        READY=1 follows.
        """
        self.readiness.serving("127.0.0.1:8787")
        self.readiness.stopping()
        self.assertTrue(self.probes[0].called)
        self.assertEqual(self.notifier.sent("READY"), [])


class DaemonNotificationTests(SynchronousTestCase):
    """
    The service tree tells the manager when it serves and when it stops.
    """

    def test_readyAfterListeningStoppingAtStop(self) -> None:
        """
        Started for real on a memory reactor, under a service manager: the
        manager is told READY=1 once the probe (a real read, through the
        store) answered, and STOPPING=1 first thing at stop.
        """
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        reactor = ThreadedMemoryReactor()
        name = f"avatard-test-notify-{os.getpid()}-{id(self)}"
        manager = NotifySocket("\0" + name)
        self.addCleanup(manager.close)
        self.patch(os, "environ", {**os.environ, "NOTIFY_SOCKET": "@" + name})
        service = makeService(options("--db", path, "--port", "tcp:8787"), reactor)
        service.privilegedStartService()
        with capturedLogs():
            service.startService()
            self.assertEqual(manager.waitFor("READY")["READY"], "1")
            stopping = service.stopService()
            self.assertEqual(manager.waitFor("STOPPING")["STOPPING"], "1")
            self.successResultOf(stopping)

    def test_unusableNotifySocketExitsWithOneLine(self) -> None:
        """
        A C{NOTIFY_SOCKET} that is no socket address ends the process with
        one line naming it.
        """
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        options = Options()
        options.parseOptions(["--db", path])
        self.patch(os, "environ", {**os.environ, "NOTIFY_SOCKET": "notify"})
        with self.assertRaises(SystemExit) as raised:
            makeService(options, ThreadedMemoryReactor())
        self.assertEqual(
            raised.exception.code,
            "avatard: NOTIFY_SOCKET='notify' is neither an absolute path nor an @abstract name",
        )

    def test_failingProbeHoldsReadinessBack(self) -> None:
        """
        A probe that fails keeps READY=1 back.
        """
        readiness = Readiness(
            RecordingNotifier(), lambda: fail(OSError("no")), Clock(), lambda: "", notListening
        )
        with capturedLogs():
            readiness.serving("127.0.0.1:1")
        self.assertFalse(readiness.ready)


class NotifierPathTests(SynchronousTestCase):
    """
    C{NOTIFY_SOCKET} naming a socket file.
    """

    def test_sendsToAPath(self) -> None:
        """
        Assignments arrive as one datagram of C{KEY=value} lines.
        """
        # Short: a UNIX socket path is limited to about 100 bytes.
        directory = tempfile.mkdtemp(prefix="avatard-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "notify")
        manager = NotifySocket(path)
        self.addCleanup(manager.close)
        notifier = SystemdNotifier.fromEnvironment({"NOTIFY_SOCKET": path})
        assert notifier is not None
        notifier.notify({"READY": "1", "STATUS": "Serving"})
        self.assertEqual(manager.waitFor("READY"), {"READY": "1", "STATUS": "Serving"})
