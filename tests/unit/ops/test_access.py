"""
L{avatard.ops.access}: the access log, one line per request.
"""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.ops.access import HELD_LINES, AccessLog, AccessLogService, MainLogAccessLog
from avatard.protocol.factory import WhoFactory
from avatard.request.observe import IRequestObserver
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import Connection, DictStore


class AccessLogTests(SynchronousTestCase):
    """
    L{AccessLog}: one line per request, written once per reactor turn.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_790_000_000.125)
        self.path = os.path.abspath(self.mktemp())
        self.log = AccessLog(self.path, self.clock)
        self.addCleanup(self.log.close)
        self.responder = Responder(DictStore(), ClassicRenderer(), self.clock)
        self.factory = WhoFactory(self.responder, self.clock, observer=self.log, timer=self.clock.seconds)

    def read(self, path: str | None = None) -> str:
        with open(path or self.path, encoding="utf-8") as f:
            return f.read()

    def test_provider(self) -> None:
        """
        Both access logs are request observers.
        """
        self.assertTrue(verifyObject(IRequestObserver, self.log))
        self.assertTrue(verifyObject(IRequestObserver, MainLogAccessLog()))

    def test_linesAreWrittenAtTheEndOfTheTurn(self) -> None:
        """
        Lines made in one turn are written together when it ends: time,
        peer, command, result, latency and the quoted, sanitised request.
        """
        c = Connection(self.factory)
        c.send(b"WHO yoen\nWHO nobody\nFROB \x1b[31m\n")
        self.assertEqual(self.read(), "")
        self.clock.advance(0)
        self.assertEqual(
            self.read(),
            '2026-09-21T14:13:20.125Z 192.0.2.1:40000 WHO ok 0.000ms "WHO yoen"\n'
            '2026-09-21T14:13:20.125Z 192.0.2.1:40000 WHO not-found 0.000ms "WHO nobody"\n'
            '2026-09-21T14:13:20.125Z 192.0.2.1:40000 - bad-request 0.000ms "FROB \\x1b[31m"\n',
        )
        c.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_jsonRequestsAreNamedJSON(self) -> None:
        """
        A C{JSON} request is logged under its own command, C{JSON}, with
        its result.
        """
        c = Connection(self.factory)
        c.send(b"JSON yoen\njson nobody\nJSON\n")
        self.clock.advance(0)
        self.assertEqual(
            [" ".join(line.split(" ")[2:4]) for line in self.read().splitlines()],
            ["JSON ok", "JSON not-found", "JSON bad-request"],
        )

    def test_reopenAfterRename(self) -> None:
        """
        After the file is renamed, L{AccessLog.reopen} writes the lines
        made so far to it, and new lines go to a new file at the path.
        """
        c = Connection(self.factory)
        c.send(b"PING\n")
        self.clock.advance(0)
        os.rename(self.path, self.path + ".1")
        c.send(b"STATS\n")
        self.log.reopen()
        c.send(b"HELP\n")
        self.clock.advance(0)
        self.assertIn('"PING"', self.read(self.path + ".1"))
        self.assertIn('"STATS"', self.read(self.path + ".1"))
        self.assertNotIn('"HELP"', self.read(self.path + ".1"))
        self.assertIn('"HELP"', self.read())

    def test_serviceClosesTheLog(self) -> None:
        """
        Stopping the service writes what is left and closes the file.
        """
        service = AccessLogService(self.log)
        service.startService()
        c = Connection(self.factory)
        c.send(b"PING\n")
        c.lose()
        service.stopService()
        self.assertIn('"PING"', self.read())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_mainLog(self) -> None:
        """
        C{--access-log -}: one event per request in the daemon's own log.
        """
        self.factory = WhoFactory(
            self.responder, self.clock, observer=MainLogAccessLog(), timer=self.clock.seconds
        )
        with capturedLogs() as events:
            Connection(self.factory).send(b"WHO \xffyoen\n")
        [event] = events
        self.assertEqual(event["log_namespace"], "avatard.access")
        self.assertEqual(event["request"], '192.0.2.1:40000 WHO bad-request 0.000ms "WHO \\xffyoen"')

    def test_sameRequestDifferentResults(self) -> None:
        """
        A request repeated with another reply is logged with its own
        result: what is remembered of a request depends on its reply too.
        """
        store = DictStore()
        factory = WhoFactory(
            Responder(store, ClassicRenderer(), self.clock),
            self.clock,
            observer=self.log,
            timer=self.clock.seconds,
        )
        c = Connection(factory)
        c.send(b"WHO yoen\n")
        store.error = OSError("gone")
        with capturedLogs():
            c.send(b"WHO yoen\n")
        self.clock.advance(0)
        self.assertEqual(
            [line.split(" ")[3] for line in self.read().splitlines()],
            ["ok", "unavailable"],
        )

    def test_failedReopenKeepsABoundedBacklog(self) -> None:
        """
        When the path cannot be opened again, the reopen fails with the
        reason; lines wait, at most L{HELD_LINES} of them, for a later
        reopen to succeed.
        """
        os.rename(self.path, self.path + ".1")
        # A directory where the file was: it cannot be opened as one.
        os.mkdir(self.path)
        with self.assertRaises(IsADirectoryError):
            self.log.reopen()
        for i in range(HELD_LINES + 5):
            self.log.requestAnswered("-", "PING", "ok", b"PING %d" % i, 0.0)
        self.clock.advance(0)
        os.rmdir(self.path)
        self.log.reopen()
        lines = self.read().splitlines()
        self.assertEqual(len(lines), HELD_LINES)
        self.assertTrue(lines[-1].endswith(f'"PING {HELD_LINES + 4}"'))

    def test_writeFailureIsReportedOnce(self) -> None:
        """
        A file that cannot be written is reported once, not once per turn;
        lines wait (at most L{HELD_LINES}) and are written, with one line
        saying so, once the file can be written again. Both lines keep the
        name log filters know, C{avatard.access.AccessLog}.
        """
        full = AccessLog("/dev/full", self.clock)
        self.addCleanup(full.close)
        with capturedLogs() as events:
            for turn in range(3):
                full.requestAnswered("-", "PING", "ok", b"PING %d" % turn, 0.0)
                self.clock.advance(0)
            self.assertEqual([e["log_level"] for e in events], [LogLevel.error])
            self.assertIn("No space left on device", formatEvent(events[0]))
            full.path = self.path
            full.reopen()
        self.assertEqual(len(events), 2)
        self.assertEqual({e["log_namespace"] for e in events}, {"avatard.access.AccessLog"})
        self.assertEqual(len(self.read().splitlines()), 3)
