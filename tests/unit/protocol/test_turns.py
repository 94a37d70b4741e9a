"""
Fair shares of the reactor's turns: a connection answers at most
C{linesPerTurn} requests, then lets the others run until the next turn.
"""

from __future__ import annotations

import math

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.protocol.turns import NextTurn
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, Connection, DictStore, connect, oneTurn

PONG = b"OK pong\r\n"


def advance(c: Connection) -> None:
    oneTurn(c.clock)


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

    def test_shareAndSpare(self) -> None:
        """
        A share is the connection's own, or what is left of the spare if
        that is more; what a connection answers beyond its own share comes
        out of the spare, which is whole again on the turn after one in
        which a connection stepped aside.
        """
        clock = Clock()
        turns = NextTurn(clock, share=10, spare=25)
        self.assertEqual(turns.share(), 25)
        turns.took(8)
        self.assertEqual(turns.share(), 25)
        turns.took(20)
        self.assertEqual((turns.spare, turns.share()), (15, 15))
        turns.took(15)
        self.assertEqual((turns.spare, turns.share()), (10, 10))
        turns.took(10)
        self.assertEqual((turns.spare, turns.share()), (10, 10))
        turns.took(12)
        self.assertEqual((turns.spare, turns.share()), (8, 10))
        oneTurn(clock)
        self.assertEqual(turns.share(), 10)
        turns.later(lambda: None)
        oneTurn(clock)
        self.assertEqual(turns.share(), 25)

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
        c = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
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
        greedy = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
        other = Connection(greedy.factory)
        greedy.send(b"WHO yoen\n" * 5000)
        other.send(b"WHO esteban\n")
        self.assertEqual(other.transport.value(), TUTORIAL_REPLIES["esteban"])
        self.assertEqual(greedy.transport.value(), TUTORIAL_REPLIES["yoen"] * 10)

    def test_floodersShareTurnsRoundRobin(self) -> None:
        """
        Connections with more to do each get one share per turn.
        """
        first = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
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
        c = connect(limits=Limits(linesPerTurn=7, spareLinesPerTurn=0))
        logins = [("yoen", "esteban", "mohamed")[i % 3] for i in range(1000)]
        c.send(b"".join(b"WHO %s\n" % login.encode() for login in logins))
        self.assertEqual(c.received(), b"".join(TUTORIAL_REPLIES[login] for login in logins))

    def test_aPartialLineIsNotAShare(self) -> None:
        """
        The share ends only when another whole request waits: a read of
        exactly the share, or the share and part of a line, leaves the
        connection reading.
        """
        c = connect(limits=Limits(linesPerTurn=3, spareLinesPerTurn=0))
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
        c = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
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
        c = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
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
        c = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
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
        c = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=0))
        c.send(b"PING\n" * 30)
        c.lose()
        advance(c)
        self.assertEqual(c.transport.value(), PONG * 10)

    def test_aLoneConnectionTakesTheSpare(self) -> None:
        """
        A connection may answer the spare's worth of requests in a turn
        when it is more than its share; the spare is whole again the next
        turn.
        """
        c = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=30))
        c.send(b"PING\n" * 100)
        self.assertEqual(c.transport.value(), PONG * 30)
        advance(c)
        self.assertEqual(c.transport.value(), PONG * 60)

    def test_theSpareGoesToTheFirstConnectionsThatNeedIt(self) -> None:
        """
        In one turn the spare goes to the first connections to need it;
        the others get their own share.
        """
        first = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=30))
        second = Connection(first.factory)
        third = Connection(first.factory)
        first.send(b"PING\n" * 100)
        second.send(b"PING\n" * 100)
        third.send(b"PING\n" * 5)
        self.assertEqual(first.transport.value(), PONG * 30)
        self.assertEqual(second.transport.value(), PONG * 10)
        self.assertEqual(third.transport.value(), PONG * 5)
        advance(first)
        self.assertEqual(first.transport.value(), PONG * 60)
        self.assertEqual(second.transport.value(), PONG * 20)

    def test_requestsAnsweredBeforeAnotherPauseTakeTheSpare(self) -> None:
        """
        Requests answered beyond a connection's share come out of the
        spare, also when something else than the share stops it.
        """
        first = connect(limits=Limits(linesPerTurn=10, spareLinesPerTurn=30))
        second = Connection(first.factory)
        first.protocol.unsentLimit = 25 * len(PONG)
        first.send(b"PING\n" * 100)
        self.assertEqual(first.transport.value(), PONG * 26)
        second.send(b"PING\n" * 100)
        self.assertEqual(second.transport.value(), PONG * 14)

    def test_defaultShares(self) -> None:
        """
        By default the spare is 2,000 requests a turn, and a connection's
        own share 100.
        """
        clock = Clock()
        factory = WhoFactory(Responder(DictStore(), ClassicRenderer(), clock), clock)
        clients = [Connection(factory) for _ in range(2)]
        for c in clients:
            c.protocol.unsentLimit = math.inf
            c.send(b"PING\n" * 2500)
        self.assertEqual([c.transport.value() for c in clients], [PONG * 2000, PONG * 100])
