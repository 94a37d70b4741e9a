"""
Watching requests one by one: what observers are told, and the names of
commands and results they count under.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.request import observe
from avatard.request.observe import REMEMBERED, IRequestObserver, Observers, commandOf, resultOf
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, Connection, ControlledStore


class NamesTests(SynchronousTestCase):
    """
    How requests and replies are named in logs and metrics.
    """

    def test_commandAndResult(self) -> None:
        """
        Commands are counted by name, made-up words as C{-}; results are
        C{ok} or the code after C{ERR}.
        """
        self.assertEqual(
            [
                commandOf(line)
                for line in (b"who yoen", b"  PING", b"FROB x", b"", b"\xff", b"STATS", b"json yoen", b"JSON")
            ],
            ["WHO", "PING", "-", "-", "-", "STATS", "JSON", "JSON"],
        )
        self.assertEqual(resultOf(b"OK pong\r\n"), "ok")
        self.assertEqual(resultOf(b"ERR not-found no such login\r\n"), "not-found")

    def test_commandsOfLinesAreRememberedWithinABound(self) -> None:
        """
        The command of a line seen before is the same, remembered; at most
        L{REMEMBERED} lines are, however many different lines come.
        """
        lines = [b"WHO user%d" % n for n in range(REMEMBERED * 3)] + [b"frob %d" % n for n in range(10)]
        self.assertEqual([commandOf(line) for line in lines], ["WHO"] * (REMEMBERED * 3) + ["-"] * 10)
        self.assertEqual([commandOf(line) for line in lines[-10:]], ["-"] * 10)
        self.assertLessEqual(len(observe._commandOfLine), REMEMBERED)


@implementer(IRequestObserver)
class RecordingObserver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, bytes, float]] = []

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        self.seen.append((peer, command, result, line, seconds))


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
        Without an observer, requests cost nothing more: they are answered
        as ever, and the timer is never read.
        """
        readings: list[float] = []

        def timer() -> float:
            readings.append(self.clock.seconds())
            return readings[-1]

        factory = WhoFactory(self.factory.responder, self.clock, self.factory.limits, timer=timer)
        c = Connection(factory)
        c.send(b"PING\nWHO yoen\n" + b"x" * 30 + b"\n")
        self.store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(
            c.received(),
            b"OK pong\r\n" + TUTORIAL_REPLIES["yoen"] + b"ERR too-long request line too long, closing\r\n",
        )
        self.assertEqual(readings, [])

    def test_everyRequestIsReportedWithItsLatency(self) -> None:
        """
        Immediate replies at once, looked-up replies when their lookup
        answers, with the time taken, their command and result; a line too
        long, cut to the limit.
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
                ("192.0.2.1:40000", "PING", "ok", b"PING", 0.0),
                ("192.0.2.1:40000", "WHO", "ok", b"WHO yoen", 0.25),
                ("192.0.2.1:40000", "-", "too-long", b"x" * 20, 0.0),
            ],
        )
