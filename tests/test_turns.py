"""
Fair shares of the reactor's turns: a connection answers at most
C{linesPerTurn} requests, then lets the others run until the next turn.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from avatard.avatar import ClassicRenderer
from avatard.commands import Responder
from avatard.limits import Limits
from avatard.protocol import WhoFactory
from avatard.turns import NextTurn

from .helpers import TUTORIAL_REPLIES, Connection, DictStore, connect, oneTurn

PONG = b"OK pong\r\n"


def advance(c: Connection) -> None:
    clock = c.factory.clock
    assert isinstance(clock, Clock)
    oneTurn(clock)


class NextTurnTests(SynchronousTestCase):
    """
    L{NextTurn}.
    """

    def test_runsOnTheNextTurnInOrder(self) -> None:
        """
        What is given to C{later} runs on the next turn (a delayed call of
        no delay, one for all), in the order given.
        """
        clock = Clock()
        turns = NextTurn(clock)
        ran: list[int] = []
        turns.later(lambda: ran.append(1))
        turns.later(lambda: ran.append(2))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        self.assertEqual(clock.getDelayedCalls()[0].getTime(), clock.seconds())
        self.assertEqual(len(turns), 2)
        self.assertEqual(ran, [])
        clock.advance(0)
        self.assertEqual(ran, [1, 2])
        self.assertEqual(len(turns), 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_givenWhileRunningRunsOnTheTurnAfter(self) -> None:
        """
        What is given while a turn's calls run waits for the turn after.
        """
        clock = Clock()
        turns = NextTurn(clock)
        ran: list[str] = []

        def first() -> None:
            ran.append("first")
            turns.later(lambda: ran.append("again"))

        turns.later(first)
        oneTurn(clock)
        self.assertEqual(ran, ["first"])
        oneTurn(clock)
        self.assertEqual(ran, ["first", "again"])


class ShareTests(SynchronousTestCase):
    """
    A connection's share of a turn.
    """

    def test_atMostItsShareInOneTurn(self) -> None:
        """
        Of 25 requests in one read, 10 are answered in this turn, 10 in the
        next and 5 in the one after; reading stops meanwhile.
        """
        c = connect(limits=Limits(linesPerTurn=10))
        c.send(b"PING\n" * 25)
        self.assertEqual(c.transport.value(), PONG * 10)
        self.assertEqual(c.transport.producerState, "paused")
        advance(c)
        self.assertEqual(c.transport.value(), PONG * 20)
        self.assertEqual(c.transport.producerState, "paused")
        advance(c)
        self.assertEqual(c.transport.value(), PONG * 25)
        self.assertEqual(c.transport.producerState, "producing")

    def test_othersAreAnsweredBeforeTheRest(self) -> None:
        """
        While a connection that pipelined thousands of requests waits for
        its next turn, another connection's request is answered.
        """
        greedy = connect(limits=Limits(linesPerTurn=10))
        other = Connection(greedy.factory)
        greedy.send(b"WHO yoen\n" * 5000)
        other.send(b"WHO esteban\n")
        self.assertEqual(other.transport.value(), TUTORIAL_REPLIES["esteban"])
        self.assertEqual(greedy.transport.value(), TUTORIAL_REPLIES["yoen"] * 10)

    def test_floodersShareTurnsRoundRobin(self) -> None:
        """
        Connections with more to do each get one share per turn.
        """
        first = connect(limits=Limits(linesPerTurn=10))
        second = Connection(first.factory)
        first.send(b"PING\n" * 100)
        second.send(b"PING\n" * 100)
        for turn in range(1, 5):
            self.assertEqual(first.transport.value(), PONG * 10 * turn)
            self.assertEqual(second.transport.value(), PONG * 10 * turn)
            advance(first)

    def test_everyRequestAnsweredInOrder(self) -> None:
        """
        However many turns it takes, every request is answered, in order.
        """
        c = connect(limits=Limits(linesPerTurn=7))
        logins = [("yoen", "esteban", "mohamed")[i % 3] for i in range(1000)]
        c.send(b"".join(b"WHO %s\n" % login.encode() for login in logins))
        self.assertEqual(c.received(), b"".join(TUTORIAL_REPLIES[login] for login in logins))

    def test_aPartialLineIsNotAShare(self) -> None:
        """
        The share ends only when another whole request waits: a read of
        exactly the share, or the share and part of a line, leaves the
        connection reading.
        """
        c = connect(limits=Limits(linesPerTurn=3))
        c.send(b"PING\n" * 3 + b"PI")
        self.assertEqual(c.transport.value(), PONG * 3)
        self.assertEqual(c.transport.producerState, "producing")
        c.send(b"NG\n")
        self.assertEqual(c.transport.value(), PONG * 4)

    def test_shutdownAnswersEverythingReadAtOnce(self) -> None:
        """
        At shutdown, every request read is answered without waiting for
        further turns, and the connection closes.
        """
        c = connect(limits=Limits(linesPerTurn=10))
        c.send(b"PING\n" * 50)
        self.assertEqual(c.transport.value(), PONG * 10)
        drained = c.factory.drain(5)
        self.assertEqual(c.transport.value(), PONG * 50)
        self.assertTrue(c.closing)
        c.lose()
        self.successResultOf(drained)

    def test_endOfInputAfterAFlood(self) -> None:
        """
        A client that ends its input after a flood of requests gets every
        reply, over as many turns as it takes, then the close.
        """
        c = connect(limits=Limits(linesPerTurn=10))
        c.send(b"PING\n" * 35)
        c.protocol.readConnectionLost()
        self.assertFalse(c.closing)
        self.assertEqual(c.received(), PONG * 35)
        self.assertTrue(c.closing)

    def test_unsentRepliesAndTheTurnBothPause(self) -> None:
        """
        Reading resumes only once the turn is over and the replies are
        sent.
        """
        c = connect(limits=Limits(linesPerTurn=10))
        c.protocol.unsentLimit = 5 * len(PONG)
        c.send(b"PING\n" * 30)
        self.assertEqual(c.transport.value(), PONG * 6)
        advance(c)
        self.assertEqual(c.transport.value(), PONG * 6)
        c.sent()
        self.assertEqual(c.transport.value(), PONG * 12)

    def test_lostWhileWaitingForItsTurn(self) -> None:
        """
        A connection lost while it waits for its turn is not resumed.
        """
        c = connect(limits=Limits(linesPerTurn=10))
        c.send(b"PING\n" * 30)
        c.lose()
        advance(c)
        self.assertEqual(c.transport.value(), PONG * 10)

    def test_defaultShare(self) -> None:
        """
        By default a connection answers 100 requests per turn.
        """
        clock = Clock()
        factory = WhoFactory(Responder(DictStore(), ClassicRenderer(), clock), clock)
        transport = StringTransport()
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(transport)
        protocol.dataReceived(b"PING\n" * 250)
        self.assertEqual(transport.value(), PONG * 100)
