"""
Watching requests: the access log and what feeds it.
"""

from __future__ import annotations

import os

from twisted.internet.address import IPv6Address
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.addresses import describeAddress as describePeer
from avatard.model import Avatar
from avatard.ops.access import HELD_LINES, AccessLog, AccessLogService, MainLogAccessLog
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.request.observe import IRequestObserver, Observers, commandOf, resultOf
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.text import quoteBytes as quoteRequest
from tests.helpers import Connection, ControlledStore, DictStore


@implementer(IRequestObserver)
class RecordingObserver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bytes, float]] = []

    def requestAnswered(self, peer: str, line: bytes, reply: bytes, seconds: float) -> None:
        self.seen.append((peer, line, reply, seconds))


class QuoteTests(SynchronousTestCase):
    """
    L{quoteRequest}: nothing a client sends reaches the log raw.
    """

    def test_plainRequestIsQuotedAsItIs(self) -> None:
        """
        Printable text is kept, in double quotes.
        """
        self.assertEqual(quoteRequest(b"WHO o'brien%_*"), '"WHO o\'brien%_*"')
        self.assertEqual(quoteRequest("WHO Estebán ☃".encode()), '"WHO Estebán ☃"')

    def test_controlsQuotesBackslashesAndBadBytesAreEscaped(self) -> None:
        """
        Control and format characters, bytes that are not UTF-8, C{"} and
        C{\\} are escaped; the result is one printable line.
        """
        self.assertEqual(
            quoteRequest(b'WHO "a\\b\x1b[2J\r\x00\xff\xc3 \xe2\x80\xae x\x7f'),
            '"WHO \\"a\\\\b\\x1b[2J\\x0d\\x00\\xff\\xc3 \\u202e x\\x7f"',
        )

    def test_commandAndResult(self) -> None:
        """
        Commands are counted by name, made-up words as C{-}; results are
        C{ok} or the code after C{ERR}.
        """
        self.assertEqual(
            [commandOf(line) for line in (b"who yoen", b"  PING", b"FROB x", b"", b"\xff", b"STATS")],
            ["WHO", "PING", "-", "-", "-", "STATS"],
        )
        self.assertEqual(resultOf(b"OK pong\r\n"), "ok")
        self.assertEqual(resultOf(b"ERR not-found no such login\r\n"), "not-found")

    def test_describePeer(self) -> None:
        """
        IPv6 peers are bracketed; anything else without a name is C{-}.
        """
        self.assertEqual(describePeer(IPv6Address("TCP", "::1", 5)), "[::1]:5")
        self.assertEqual(describePeer(None), "-")


class ObservationTests(SynchronousTestCase):
    """
    Connections report every request to the factory's observer, if any.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = ControlledStore()
        self.factory = WhoFactory(
            Responder(self.store, ClassicRenderer(), self.clock),
            self.clock,
            Limits(maxLine=20),
            timer=self.clock.seconds,
        )
        self.observer = RecordingObserver()

    def observedBy(self, observer: IRequestObserver) -> WhoFactory:
        """
        @return: a factory like C{self.factory}, whose requests C{observer}
            is told about.
        """
        factory = self.factory
        return WhoFactory(
            factory.responder, self.clock, factory.limits, observer=observer, timer=factory.timer
        )

    def test_noObserverNoObservation(self) -> None:
        """
        Without an observer, connections call the responder directly.
        """
        c = Connection(self.factory)
        self.assertEqual(c.protocol._respond, self.factory.responder.respond)

    def test_everyRequestIsReportedWithItsLatency(self) -> None:
        """
        Immediate replies at once, looked-up replies when their lookup
        answers, with the time taken; a line too long, cut to the limit.
        """
        self.factory = self.observedBy(Observers([self.observer]))
        assert self.factory.observer is not None
        self.assertTrue(verifyObject(IRequestObserver, self.factory.observer))
        c = Connection(self.factory)
        c.send(b"PING\nWHO yoen\n")
        self.clock.advance(0.25)
        self.store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        c.send(b"x" * 30 + b"\n")
        self.assertEqual(
            self.observer.seen,
            [
                ("192.0.2.1:40000", b"PING", b"OK pong\r\n", 0.0),
                (
                    "192.0.2.1:40000",
                    b"WHO yoen",
                    b"OK Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n",
                    0.25,
                ),
                ("192.0.2.1:40000", b"x" * 20, b"ERR too-long request line too long, closing\r\n", 0.0),
            ],
        )


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
        self.factory.responder = Responder(store, ClassicRenderer(), self.clock)
        c = Connection(self.factory)
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
            self.log.requestAnswered("-", b"PING %d" % i, b"OK pong\r\n", 0.0)
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
        saying so, once the file can be written again.
        """
        full = AccessLog("/dev/full", self.clock)
        self.addCleanup(full.close)
        with capturedLogs() as events:
            for turn in range(3):
                full.requestAnswered("-", b"PING %d" % turn, b"OK pong\r\n", 0.0)
                self.clock.advance(0)
            self.assertEqual([e["log_level"] for e in events], [LogLevel.error])
            self.assertIn("No space left on device", formatEvent(events[0]))
            full.path = self.path
            full.reopen()
        self.assertEqual(len(events), 2)
        self.assertEqual(len(self.read().splitlines()), 3)
