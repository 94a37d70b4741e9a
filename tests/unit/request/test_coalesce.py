"""
L{CoalescingStore}: many lookups, few store round trips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore, IImmediateLookup, WouldBlock
from avatard.model import Avatar
from avatard.request.coalesce import CoalescingStore

YOEN = Avatar("yoen", "Van der Veld", "Yoen")
ESTEBAN = Avatar("esteban", "Garcia Marquez", "Estebán")


@implementer(IAvatarStore)
class BatchStore:
    """
    A store that records each C{lookupMany} and answers when told.
    """

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], Deferred[Mapping[str, Avatar]]]] = []
        self.cancelled: list[list[str]] = []

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        raise AssertionError("a coalescing store only asks for batches")

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        batch = list(logins)
        d: Deferred[Mapping[str, Avatar]] = Deferred(lambda _: self.cancelled.append(batch))
        self.batches.append((batch, d))
        return d

    def answer(self, index: int, found: Mapping[str, Avatar]) -> None:
        self.batches[index][1].callback(found)


class CoalescingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.backend = BatchStore()
        self.store = CoalescingStore(self.backend, maxBatch=3)

    def sent(self) -> list[list[str]]:
        return [logins for logins, _ in self.backend.batches]

    def test_providesTheInterface(self) -> None:
        """
        L{CoalescingStore} is an L{IAvatarStore}, and so is the fake here.
        """
        self.assertTrue(verifyObject(IAvatarStore, self.store))
        self.assertTrue(verifyObject(IAvatarStore, self.backend))

    def test_lookupGoesAtOnceWhileTheStoreIsIdle(self) -> None:
        """
        A lookup made while no batch is at the store goes to it at once,
        alone; the lookups made meanwhile go together as the next batch, and
        each gets its own answer.
        """
        yoen = self.store.lookup("yoen")
        self.assertEqual(self.sent(), [["yoen"]])
        nobody = self.store.lookup("nobody")
        esteban = self.store.lookup("esteban")
        self.assertEqual(self.sent(), [["yoen"]])
        self.backend.answer(0, {"yoen": YOEN})
        self.assertEqual(self.successResultOf(yoen), YOEN)
        self.assertEqual(self.sent(), [["yoen"], ["nobody", "esteban"]])
        self.backend.answer(1, {"esteban": ESTEBAN})
        self.assertIsNone(self.successResultOf(nobody))
        self.assertEqual(self.successResultOf(esteban), ESTEBAN)

    def test_storeThatAnswersAtOnceAnswersAtOnce(self) -> None:
        """
        Through a store whose lookups are answered at once, every lookup is
        answered at once, each in its own query.
        """

        @implementer(IAvatarStore)
        class Immediate(BatchStore):
            def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
                self.batches.append((list(logins), Deferred()))
                return succeed({"yoen": YOEN} if "yoen" in logins else {})

        backend = Immediate()
        store = CoalescingStore(backend)
        self.assertEqual(self.successResultOf(store.lookup("yoen")), YOEN)
        self.assertIsNone(self.successResultOf(store.lookup("nobody")))
        self.assertEqual([logins for logins, _ in backend.batches], [["yoen"], ["nobody"]])

    def test_concurrentLookupsOfOneLoginShareOneQuery(self) -> None:
        """
        N concurrent lookups of one login make one query for it, whether
        they come while it is at the store or while waiting for the next
        batch.
        """
        first = [self.store.lookup("yoen") for _ in range(5)]
        queued = [self.store.lookup("esteban") for _ in range(5)]
        self.assertEqual(self.sent(), [["yoen"]])
        self.backend.answer(0, {"yoen": YOEN})
        self.backend.answer(1, {"esteban": ESTEBAN})
        self.assertEqual(self.sent(), [["yoen"], ["esteban"]])
        self.assertEqual([self.successResultOf(d) for d in first + queued], [YOEN] * 5 + [ESTEBAN] * 5)

    def test_oneBatchAtTheStoreAtATime(self) -> None:
        """
        Lookups arriving while a batch is at the store gather into batches
        of at most C{maxBatch}, each sent as soon as the one before it is
        answered.
        """
        first = self.store.lookup("yoen")
        second = [self.store.lookup(login) for login in ("esteban", "a", "b", "c")]
        self.assertEqual(len(self.backend.batches), 1)
        self.backend.answer(0, {"yoen": YOEN})
        self.successResultOf(first)
        self.assertEqual(self.sent(), [["yoen"], ["esteban", "a", "b"]])
        self.backend.answer(1, {"esteban": ESTEBAN})
        self.assertEqual(self.successResultOf(second[0]), ESTEBAN)
        self.assertEqual(self.sent()[2], ["c"])
        self.backend.answer(2, {})
        self.assertIsNone(self.successResultOf(second[3]))

    def test_failureReachesEveryWaiter(self) -> None:
        """
        A batch that fails fails every lookup in it; the next batch is sent
        all the same.
        """
        a, b = self.store.lookup("yoen"), self.store.lookup("yoen")
        c = self.store.lookup("mohamed")
        self.backend.batches[0][1].errback(OSError("disk I/O error"))
        self.failureResultOf(a, OSError)
        self.failureResultOf(b, OSError)
        self.assertEqual(self.sent()[1], ["mohamed"])
        self.assertNoResult(c)

    def test_batchNobodyWaitsForIsCancelled(self) -> None:
        """
        When every lookup waiting on a batch at the store is cancelled, the
        store's lookup is cancelled; while one still waits, it is not.
        """
        a, b = self.store.lookup("yoen"), self.store.lookup("yoen")
        a.cancel()
        self.assertEqual(self.backend.cancelled, [])
        b.cancel()
        self.assertEqual(self.backend.cancelled, [["yoen"]])
        self.failureResultOf(a, CancelledError)
        self.failureResultOf(b, CancelledError)

    def test_batchAbandonedBeforeItGoesIsNotSent(self) -> None:
        """
        A batch whose lookups are all cancelled before it goes is never
        sent.
        """
        first = self.store.lookup("yoen")
        lookup = self.store.lookup("esteban")
        lookup.cancel()
        self.backend.answer(0, {"yoen": YOEN})
        self.successResultOf(first)
        self.assertEqual(self.sent(), [["yoen"]])
        self.failureResultOf(lookup, CancelledError)

    def test_lateAnswerAfterCancelIsDropped(self) -> None:
        """
        A waiter cancelled (timed out) while others still wait gets no second
        result when the batch is answered.
        """
        a, b = self.store.lookup("yoen"), self.store.lookup("yoen")
        a.cancel()
        self.backend.answer(0, {"yoen": YOEN})
        self.failureResultOf(a, CancelledError)
        self.assertEqual(self.successResultOf(b), YOEN)

    def test_lookupNowIsTheStoresOwn(self) -> None:
        """
        L{CoalescingStore.lookupNow} passes to a store that can answer at
        once, and raises L{WouldBlock} over one that cannot.
        """
        self.assertRaises(WouldBlock, self.store.lookupNow, "yoen")

        @implementer(IAvatarStore, IImmediateLookup)
        class Immediate(BatchStore):
            def lookupNow(self, login: str) -> Avatar | None:
                return YOEN if login == "yoen" else None

        store = CoalescingStore(Immediate())
        self.assertEqual(store.lookupNow("yoen"), YOEN)
        self.assertIsNone(store.lookupNow("nobody"))
