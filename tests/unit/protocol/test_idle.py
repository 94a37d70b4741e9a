"""
L{avatard.protocol.idle}: idle deadlines of many connections on one timer,
and the idle timeout as a client sees it.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from avatard.protocol.idle import IdleTimer
from avatard.protocol.limits import Limits
from tests.helpers import TUTORIAL_REPLIES, ControlledStore, connect


class Sleeper:
    def __init__(self, clock: Clock, then: Callable[[Sleeper], None] | None = None) -> None:
        self.clock = clock
        self.fired: list[float] = []
        self.then = then

    def idleTimerFired(self) -> None:
        self.fired.append(self.clock.seconds())
        if self.then is not None:
            self.then(self)


class IdleTimerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.timer = IdleTimer(self.clock, 10)

    def test_granularity(self) -> None:
        """
        A slot is a hundredth of the timeout, at most a second.
        """
        self.assertEqual(self.timer.granularity, 0.1)
        self.assertEqual(IdleTimer(self.clock, 600).granularity, 1.0)

    def test_firesOnceTheDeadlineHasPassed(self) -> None:
        """
        A sleeper is told after its deadline, at most one slot late, once.
        """
        self.clock.advance(0.05)
        sleeper = Sleeper(self.clock)
        self.timer.watch(sleeper, 10.05)
        self.clock.advance(9.99)
        self.assertEqual(sleeper.fired, [])
        self.clock.advance(0.1)
        self.assertEqual(len(sleeper.fired), 1)
        self.assertTrue(10.05 <= sleeper.fired[0] <= 10.05 + self.timer.granularity)
        self.clock.advance(100)
        self.assertEqual(len(sleeper.fired), 1)
        self.assertEqual(len(self.timer), 0)

    def test_oneDelayedCallForAll(self) -> None:
        """
        However many sleepers are watched, one delayed call is pending.
        """
        sleepers = [Sleeper(self.clock) for _ in range(1000)]
        for n, sleeper in enumerate(sleepers):
            self.timer.watch(sleeper, 10 + n / 100)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.pump([1] * 25)
        self.assertEqual([len(s.fired) for s in sleepers], [1] * 1000)
        for n, sleeper in enumerate(sleepers):
            self.assertGreaterEqual(sleeper.fired[0], 10 + n / 100)

    def test_connectionsComingAndGoingShareTheTimer(self) -> None:
        """
        While something is watched, sleepers watched and forgotten again
        leave the one delayed call alone, rather than schedule their own.
        """
        self.timer.watch(Sleeper(self.clock), 10)
        [call] = self.clock.getDelayedCalls()
        for _ in range(1000):
            self.clock.advance(0.001)
            sleeper = Sleeper(self.clock)
            self.timer.watch(sleeper, self.clock.seconds() + 10)
            self.timer.forget(sleeper)
        self.assertEqual(self.clock.getDelayedCalls(), [call])

    def test_forgottenIsNotTold(self) -> None:
        """
        A sleeper forgotten is not told, and with nothing watched no delayed
        call is left.
        """
        first, second = Sleeper(self.clock), Sleeper(self.clock)
        self.timer.watch(first, 10)
        self.timer.watch(second, 20)
        self.timer.forget(first)
        self.timer.forget(second)
        self.timer.forget(second)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(30)
        self.assertEqual((first.fired, second.fired), ([], []))

    def test_watchAgainReplacesTheDeadline(self) -> None:
        """
        Watching a sleeper again replaces its deadline, later or earlier.
        """
        later, earlier = Sleeper(self.clock), Sleeper(self.clock)
        self.timer.watch(later, 5)
        self.timer.watch(later, 15)
        self.timer.watch(earlier, 15)
        self.timer.watch(earlier, 2)
        self.clock.advance(2)
        self.assertEqual((later.fired, earlier.fired), ([], [2]))
        self.clock.advance(12.9)
        self.assertEqual(later.fired, [])
        self.clock.advance(0.1)
        self.assertEqual(later.fired, [15])

    def test_earlierDeadlineWatchedLater(self) -> None:
        """
        A deadline earlier than every other one is still met.
        """
        late, soon = Sleeper(self.clock), Sleeper(self.clock)
        self.timer.watch(late, 60)
        self.timer.watch(soon, 1)
        self.clock.advance(1)
        self.assertEqual(soon.fired, [1])
        self.assertEqual(late.fired, [])

    def test_sleeperMayWatchItselfAgain(self) -> None:
        """
        A sleeper told may watch itself again, from within the call; other
        deadlines still pending are met too.
        """
        again = Sleeper(self.clock, lambda s: self.timer.watch(s, 25) if len(s.fired) == 1 else None)
        other = Sleeper(self.clock)
        self.timer.watch(again, 10)
        self.timer.watch(other, 12)
        self.clock.advance(10)
        self.assertEqual(again.fired, [10])
        self.clock.advance(2)
        self.assertEqual(other.fired, [12])
        self.clock.advance(13)
        self.assertEqual(again.fired, [10, 25])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_forgettingAnotherOfTheSameSlotWhileTold(self) -> None:
        """
        A sleeper forgotten by another one told before it, in the same slot,
        is not told.
        """
        order: list[str] = []
        victim = Sleeper(self.clock, lambda s: order.append("victim"))

        def kill(s: Sleeper) -> None:
            order.append("killer")
            self.timer.forget(victim)

        killer = Sleeper(self.clock, kill)
        self.timer.watch(killer, 10)
        self.timer.watch(victim, 10)
        self.clock.advance(10)
        self.assertIn(order, (["killer"], ["victim", "killer"]))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.timer), 0)

    def test_lateClockTellsEveryDueSlot(self) -> None:
        """
        When the clock jumps past several slots, every sleeper due is told.
        """
        sleepers = [Sleeper(self.clock) for _ in range(5)]
        for n, sleeper in enumerate(sleepers):
            self.timer.watch(sleeper, n + 1)
        self.clock.advance(100)
        self.assertEqual([s.fired for s in sleepers], [[100]] * 5)


class IdleTimeoutTests(SynchronousTestCase):
    """
    C{--idle-timeout}.
    """

    def test_silentConnectionIsClosedWithTimeout(self) -> None:
        """
        A connection that sends nothing for the idle timeout gets
        C{ERR timeout} and is closed.
        """
        c = connect(limits=Limits(idleTimeout=60))
        c.clock.advance(59.9)
        self.assertFalse(c.closing)
        c.clock.advance(0.2)
        self.assertEqual(c.received(), b"ERR timeout idle for too long, closing\r\n")
        self.assertTrue(c.closing)

    def test_anyDataRestartsTheTimer(self) -> None:
        """
        Each chunk received, even part of a line, restarts the timer: the
        timeout comes the idle timeout after the last one.
        """
        c = connect(limits=Limits(idleTimeout=10))
        for piece in (b"WH", b"O ", b"yoen", b"\n"):
            c.clock.advance(9)
            c.send(piece)
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])
        c.clock.advance(9)
        self.assertFalse(c.closing)
        c.clock.advance(1)
        self.assertEqual(c.received(), b"ERR timeout idle for too long, closing\r\n")

    def test_connectionOwedRepliesIsNotIdle(self) -> None:
        """
        While a reply is still owed the connection is not timed out; the
        timer runs again once it is written.
        """
        store = ControlledStore()
        c = connect(store, limits=Limits(idleTimeout=2), queryTimeout=100)
        c.send(b"WHO yoen\n")
        c.clock.advance(5)
        self.assertFalse(c.closing)
        store.answer(0, None)
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n")
        c.clock.advance(2.1)
        self.assertTrue(c.closing)

    def test_noTimerLeftAfterClose(self) -> None:
        """
        A closed connection leaves no timer behind.
        """
        c = connect()
        c.lose()
        self.assertEqual(c.clock.getDelayedCalls(), [])


class SlowReaderTests(SynchronousTestCase):
    def test_unreadRepliesAreNotIdleness(self) -> None:
        """
        A client whose replies wait for it to read them is slow, not idle:
        the idle timeout does not cut it off, and it runs again once the
        replies drain.
        """
        c = connect(limits=Limits(idleTimeout=2))
        c.protocol.unsentLimit = 1
        c.send(b"PING\n")
        c.clock.advance(10)
        self.assertFalse(c.closing)
        c.sent()
        c.clock.advance(2.1)
        self.assertTrue(c.closing)
