"""
L{avatard.request.cache}: bounded size, bounded staleness (by time, or
until a watched store changes).
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.counters import Counters
from avatard.interfaces import IChangeWatch, IReplyCache, WouldBlock
from avatard.model import Avatar
from avatard.request.cache import (
    CHECK_INTERVAL,
    DOORKEEPER_SHARE,
    LINES_PER_USER,
    NEGATIVE_SHARE,
    ReplyCache,
    WatchedReplyCache,
)
from avatard.request.render import ClassicRenderer
from avatard.request.replies import NOT_FOUND
from avatard.request.responder import Responder
from tests.backends import _TestCase
from tests.helpers import TUTORIAL_REPLIES, ControlledStore, DictStore, ErrorsFailTestCase, deferred

YOEN = Avatar("yoen", "Van der Veld", "Yoen")
YOEN_REPLY = TUTORIAL_REPLIES["yoen"]
YOEN_JSON = b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n'


class ReplyCacheTests(ErrorsFailTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()

    def test_replyIsUsedUntilTTLAfterTheLookupBegan(self) -> None:
        """
        A reply is returned until C{ttl} seconds after the start of the
        lookup that produced it, not after it was stored.
        """
        cache = ReplyCache(self.clock, size=10, ttl=1.0)
        self.clock.advance(0.6)
        cache.put(b"yoen", "yoen", YOEN_REPLY, found=True, command="WHO", stamp=0.0)
        self.assertEqual(cache.get(b"yoen"), YOEN_REPLY)
        self.clock.advance(0.399)
        self.assertEqual(cache.get(b"yoen"), YOEN_REPLY)
        self.clock.advance(0.001)
        self.assertIsNone(cache.get(b"yoen"))

    def test_replyOlderThanTTLIsNotKept(self) -> None:
        """
        A lookup that took longer than C{ttl} leaves nothing in the cache.
        """
        cache = ReplyCache(self.clock, size=10, ttl=1.0)
        self.clock.advance(1.5)
        cache.put(b"yoen", "yoen", YOEN_REPLY, found=True, command="WHO", stamp=0.0)
        self.assertIsNone(cache.get(b"yoen"))
        self.assertEqual(len(cache), 0)

    def test_sizeBoundsRepliesOfUsersFound(self) -> None:
        """
        At most C{size} replies of users found are kept; the oldest goes
        for a new user asked twice.
        """
        cache = ReplyCache(self.clock, size=3, ttl=10.0)
        for n in range(5):
            for _ in range(2):
                cache.put(b"u%d" % n, f"u{n}", b"OK %d\r\n" % n, found=True, command="WHO", stamp=0.0)
        self.assertEqual(len(cache), 3)
        self.assertEqual(
            [cache.get(b"u%d" % n) for n in range(5)], [None, None, b"OK 2\r\n", b"OK 3\r\n", b"OK 4\r\n"]
        )

    def test_expiredRepliesGoBeforeFreshOnes(self) -> None:
        """
        When full, expired replies are dropped first, so a fresh one is not
        pushed out while stale ones stay.
        """
        cache = ReplyCache(self.clock, size=3, ttl=1.0)
        cache.put(b"old1", "old1", b"OK old1\r\n", found=True, command="WHO", stamp=0.0)
        cache.put(b"old2", "old2", b"OK old2\r\n", found=True, command="WHO", stamp=0.0)
        self.clock.advance(0.5)
        cache.put(b"fresh", "fresh", b"OK fresh\r\n", found=True, command="WHO", stamp=0.5)
        self.clock.advance(0.6)
        cache.put(b"new", "new", b"OK new\r\n", found=True, command="WHO", stamp=1.1)
        self.assertEqual(len(cache), 2)
        self.assertEqual(cache.get(b"fresh"), b"OK fresh\r\n")
        self.assertEqual(cache.get(b"new"), b"OK new\r\n")

    def test_notFoundIsCachedWithinItsOwnSmallerBound(self) -> None:
        """
        Replies for logins not found are cached, at most C{size //
        NEGATIVE_SHARE} of them, and never push out replies of users found.
        """
        size = 4 * NEGATIVE_SHARE
        cache = ReplyCache(self.clock, size=size, ttl=10.0)
        cache.put(b"yoen", "yoen", YOEN_REPLY, found=True, command="WHO", stamp=0.0)
        for n in range(size * 2):
            for _ in range(2):
                cache.put(b"nobody%d" % n, f"nobody{n}", NOT_FOUND, found=False, command="WHO", stamp=0.0)
        self.assertEqual(len(cache), 1 + size // NEGATIVE_SHARE)
        self.assertEqual(cache.get(b"yoen"), YOEN_REPLY)
        self.assertEqual(cache.get(b"nobody%d" % (size * 2 - 1)), NOT_FOUND)
        self.assertIsNone(cache.get(b"nobody0"))

    def test_newAnswerReplacesTheOtherKind(self) -> None:
        """
        A login cached as not found and then found (or the other way round)
        has only its latest reply.
        """
        cache = ReplyCache(self.clock, size=8, ttl=10.0)
        cache.put(b"yoen", "yoen", NOT_FOUND, found=False, command="WHO", stamp=0.0)
        cache.put(b"yoen", "yoen", YOEN_REPLY, found=True, command="WHO", stamp=0.0)
        self.assertEqual((cache.get(b"yoen"), len(cache)), (YOEN_REPLY, 1))
        cache.put(b"yoen", "yoen", NOT_FOUND, found=False, command="WHO", stamp=0.0)
        self.assertEqual((cache.get(b"yoen"), len(cache)), (NOT_FOUND, 1))

    def test_hitsAndMissesAreCounted(self) -> None:
        """
        A request answered from the cache is a hit; a lookup begun for want
        of a cached reply is a miss; other requests are neither.
        """
        cache = ReplyCache(self.clock, size=8, ttl=10.0)
        responder = Responder(DictStore(), ClassicRenderer(), self.clock, 3.0, cache)
        for line in (b"WHO yoen", b"WHO yoen", b"PING", b"WHO yoen", b"WHO nobody", b"WHO a@b"):
            responder.respond(line)
        self.assertEqual((cache.counters.cacheHits, cache.counters.cacheMisses), (2, 2))

    def test_zeroSizeOrTTLIsRefused(self) -> None:
        """
        A cache that could keep nothing is a configuration error, not a
        cache that silently misses.
        """
        self.assertRaises(ValueError, ReplyCache, self.clock, 0, 1.0)
        self.assertRaises(ValueError, ReplyCache, self.clock, 10, 0.0)


@implementer(IChangeWatch)
class FakeWatch:
    """
    A store's change watch, moved on by the test; it cannot tell while
    C{blocked} is set.
    """

    def __init__(self) -> None:
        self.current = 1
        self.blocked = False
        self.calls = 0

    def version(self) -> int:
        self.calls += 1
        if self.blocked:
            raise WouldBlock()
        return self.current


class WatchedCacheTests(ErrorsFailTestCase):
    """
    A L{ReplyCache} in front of a store that tells when its data changes.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.watch = FakeWatch()
        self.cache = WatchedReplyCache(self.clock, self.watch, size=10)

    def fill(self) -> None:
        """
        Cache yoen (found) and nobody (not found), as lookups begun now.
        """
        self.assertIsNone(self.cache.get(b"yoen"))
        stamp = self.cache.stamp()
        self.cache.put(b"yoen", "yoen", YOEN_REPLY, found=True, command="WHO", stamp=stamp)
        self.cache.put(b"nobody", "nobody", NOT_FOUND, found=False, command="WHO", stamp=stamp)

    def test_interfaces(self) -> None:
        """
        Both caches provide L{IReplyCache}; the fake watch provides
        L{IChangeWatch}.
        """
        self.assertTrue(verifyObject(IChangeWatch, self.watch))
        self.assertTrue(verifyObject(IReplyCache, self.cache))
        self.assertTrue(verifyObject(IReplyCache, ReplyCache(self.clock)))

    def test_zeroSizeIsRefused(self) -> None:
        """
        A watched cache of no reply at all is refused: no cache is no
        L{WatchedReplyCache}.
        """
        self.assertRaises(ValueError, WatchedReplyCache, self.clock, self.watch, 0)

    def test_repliesAreKeptPastTheTTLWhileNothingChanges(self) -> None:
        """
        While the watch reports no change, the TTL plays no part: replies
        are used for as long as they stay current.
        """
        self.fill()
        self.clock.advance(3600)
        self.assertEqual((self.cache.get(b"yoen"), self.cache.get(b"nobody")), (YOEN_REPLY, NOT_FOUND))
        self.assertEqual((self.cache.counters.cacheHits, self.cache.flushes), (2, 0))

    def test_aChangeEmptiesTheCache(self) -> None:
        """
        The first request after the data changed is not answered from the
        cache, nor is any other: every reply, found or not, is dropped.
        """
        self.fill()
        self.watch.current = 2
        self.clock.advance(CHECK_INTERVAL)
        self.assertIsNone(self.cache.get(b"yoen"))
        self.assertIsNone(self.cache.get(b"nobody"))
        self.assertEqual((len(self.cache), self.cache.flushes), (0, 1))

    def test_theWatchIsAskedAtMostOncePerInterval(self) -> None:
        """
        Requests within L{CHECK_INTERVAL} of a check are answered without
        asking the watch again; the first one after it asks, and sees a
        change made meanwhile.
        """
        self.fill()
        self.assertEqual(self.watch.calls, 1)
        self.watch.current = 2
        self.clock.advance(CHECK_INTERVAL / 2)
        self.assertEqual(self.cache.get(b"yoen"), YOEN_REPLY)
        self.assertEqual(self.watch.calls, 1)
        self.clock.advance(CHECK_INTERVAL / 2)
        self.assertIsNone(self.cache.get(b"yoen"))
        self.assertEqual(self.watch.calls, 2)

    def test_aWatchThatCannotTellEmptiesTheCache(self) -> None:
        """
        When the store cannot tell whether its data changed (a writer holds
        it), nothing cached is used, and nothing cached before is used once
        it can tell again.
        """
        self.fill()
        self.watch.blocked = True
        self.clock.advance(CHECK_INTERVAL)
        self.assertIsNone(self.cache.get(b"yoen"))
        self.watch.blocked = False
        self.clock.advance(CHECK_INTERVAL)
        self.assertIsNone(self.cache.get(b"yoen"))
        self.assertEqual(len(self.cache), 0)

    def test_aLookupBegunBeforeAChangeIsNotKept(self) -> None:
        """
        A reply read before a change, and stored after the cache saw it, is
        dropped: it may show the data from before the change.
        """
        self.assertIsNone(self.cache.get(b"yoen"))
        stamp = self.cache.stamp()
        self.watch.current = 2
        self.clock.advance(CHECK_INTERVAL)
        self.assertIsNone(self.cache.get(b"esteban"))
        self.cache.put(b"yoen", "yoen", YOEN_REPLY, found=True, command="WHO", stamp=stamp)
        self.assertEqual(len(self.cache), 0)
        self.cache.put(
            b"esteban", "esteban", b"OK esteban\r\n", found=True, command="WHO", stamp=self.cache.stamp()
        )
        self.assertEqual(self.cache.get(b"esteban"), b"OK esteban\r\n")

    def test_sizeStillBoundsTheCache(self) -> None:
        """
        Without expiry, the oldest replies make room for new ones asked twice.
        """
        cache = WatchedReplyCache(self.clock, self.watch, size=3)
        cache.get(b"u0")
        for n in range(5):
            for _ in range(2):
                cache.put(
                    b"u%d" % n, f"u{n}", b"OK %d\r\n" % n, found=True, command="WHO", stamp=cache.stamp()
                )
        self.assertEqual(
            [cache.get(b"u%d" % n) for n in range(5)], [None, None, b"OK 2\r\n", b"OK 3\r\n", b"OK 4\r\n"]
        )

    def test_responderServesTheChangeWithinTheInterval(self) -> None:
        """
        Through the responder: a cached reply is used until the store
        changes, and the first request once the watch has seen the change
        is looked up again.
        """
        store = ControlledStore()
        responder = Responder(store, ClassicRenderer(), self.clock, 3.0, self.cache)
        first = deferred(responder.respond(b"WHO yoen"))
        store.answer(0, YOEN)
        self.assertEqual(self.successResultOf(first), YOEN_REPLY)
        self.clock.advance(60)
        self.assertEqual(responder.respond(b"WHO yoen"), YOEN_REPLY)
        self.watch.current = 2
        self.clock.advance(CHECK_INTERVAL)
        again = deferred(responder.respond(b"WHO yoen"))
        store.answer(0, Avatar("yoen", "Veld", "Yoen"))
        self.assertEqual(self.successResultOf(again), b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n")
        self.assertEqual(store.pending, [])


class UsersTestsMixin(_TestCase):
    """
    What both caches do alike: the size counts users, whatever lines and
    formats their replies are kept under.
    """

    clock: Clock

    def makeCache(self, size: int) -> ReplyCache | WatchedReplyCache:
        """
        @return: a cache of C{size} users found, ready to keep replies of
            lookups stamped from now on.
        """
        raise NotImplementedError()

    def keep(
        self,
        cache: ReplyCache | WatchedReplyCache,
        line: bytes,
        user: str,
        reply: bytes,
        found: bool = True,
        command: str = "WHO",
    ) -> None:
        """
        Keep C{reply} as the outcome of a lookup begun now.
        """
        cache.put(line, user, reply, found, command, cache.stamp())

    def test_oneUserTakesOneEntryWhateverItsLines(self) -> None:
        """
        A user asked by C{WHO} and C{JSON}, in several spellings, takes one
        entry of the size: a cache of one user keeps every reply of it, and
        reports one entry.
        """
        cache = self.makeCache(1)
        lines = [b"WHO yoen", b"who yoen", b" WHO\tyoen ", b"JSON yoen"]
        for line in lines[:3]:
            self.keep(cache, line, "yoen", YOEN_REPLY)
        self.keep(cache, lines[3], "yoen", YOEN_JSON, command="JSON")
        self.assertEqual(len(cache), 1)
        self.assertEqual([cache.get(line) for line in lines], [YOEN_REPLY] * 3 + [YOEN_JSON])

    def test_evictionDropsEveryLineOfTheUser(self) -> None:
        """
        When a new user needs room, the user whose replies were stored
        longest ago goes with every line of its replies, of every format.
        """
        cache = self.makeCache(2)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.keep(cache, b"WHO esteban", "esteban", b"OK esteban\r\n")
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.assertEqual(len(cache), 2)
        self.assertEqual((cache.get(b"WHO yoen"), cache.get(b"JSON yoen")), (None, None))
        self.assertEqual(cache.get(b"WHO esteban"), b"OK esteban\r\n")
        self.assertEqual(cache.get(b"WHO mohamed"), b"OK mohamed\r\n")

    def test_aNewReplyMakesItsUserTheNewest(self) -> None:
        """
        Any line stored for a user, in any format, keeps it from being the
        next to go.
        """
        cache = self.makeCache(2)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"WHO esteban", "esteban", b"OK esteban\r\n")
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.assertIsNone(cache.get(b"WHO esteban"))
        self.assertEqual((cache.get(b"WHO yoen"), cache.get(b"JSON yoen")), (YOEN_REPLY, YOEN_JSON))

    def test_linesOfOneUserAreCapped(self) -> None:
        """
        At most L{LINES_PER_USER} lines are kept for one user: each new
        spelling beyond them drops that user's oldest line, so a client
        cannot grow one entry without bound.
        """
        cache = self.makeCache(10)
        lines = [b"WHO" + b" " * n + b"yoen" for n in range(1, LINES_PER_USER + 4)]
        for line in lines:
            self.keep(cache, line, "yoen", YOEN_REPLY)
        self.assertEqual([cache.get(line) for line in lines], [None] * 3 + [YOEN_REPLY] * LINES_PER_USER)
        self.assertEqual(len(cache), 1)

    def test_aLineStoredAgainIsTheUsersNewest(self) -> None:
        """
        A line stored again is not kept twice, and becomes its user's
        newest: the next line beyond the cap drops the one after it.
        """
        cache = self.makeCache(10)
        lines = [b"WHO" + b" " * n + b"yoen" for n in range(1, LINES_PER_USER + 1)]
        for line in lines:
            self.keep(cache, line, "yoen", YOEN_REPLY)
        self.keep(cache, lines[0], "yoen", YOEN_REPLY)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.assertEqual(cache.get(lines[0]), YOEN_REPLY)
        self.assertIsNone(cache.get(lines[1]))
        self.assertEqual([cache.get(line) for line in lines[2:]], [YOEN_REPLY] * (LINES_PER_USER - 2))
        self.assertEqual(cache.get(b"JSON yoen"), YOEN_JSON)

    def test_loginsNotFoundAreCountedInUsersToo(self) -> None:
        """
        The lines of a login not found share one entry of the smaller
        bound of logins not found, which never pushes out users found.
        """
        cache = self.makeCache(NEGATIVE_SHARE)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"WHO nobody", "nobody", NOT_FOUND, found=False)
        self.keep(cache, b"JSON nobody", "nobody", NOT_FOUND, found=False, command="JSON")
        self.assertEqual(len(cache), 2)
        self.assertEqual((cache.get(b"WHO nobody"), cache.get(b"JSON nobody")), (NOT_FOUND, NOT_FOUND))
        self.keep(cache, b"WHO ghost", "ghost", NOT_FOUND, found=False)
        self.keep(cache, b"WHO ghost", "ghost", NOT_FOUND, found=False)
        self.assertEqual(len(cache), 2)
        self.assertEqual((cache.get(b"WHO nobody"), cache.get(b"JSON nobody")), (None, None))
        self.assertEqual((cache.get(b"WHO ghost"), cache.get(b"WHO yoen")), (NOT_FOUND, YOEN_REPLY))

    def test_aFullCacheKeepsANewUserAskedTwice(self) -> None:
        """
        A full cache does not keep a new user the first time: it remembers
        the user, and keeps it (dropping the oldest) when asked again.
        Until full, every user is kept at once.
        """
        cache = self.makeCache(2)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"WHO esteban", "esteban", b"OK esteban\r\n")
        self.assertEqual(len(cache), 2)
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.assertIsNone(cache.get(b"WHO mohamed"))
        self.assertEqual(cache.get(b"WHO yoen"), YOEN_REPLY)
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.assertEqual(cache.get(b"WHO mohamed"), b"OK mohamed\r\n")
        self.assertEqual((cache.get(b"WHO yoen"), len(cache)), (None, 2))

    def test_aFullCacheKeepsALoginNotFoundAskedTwice(self) -> None:
        """
        Logins not found, at their own bound, are admitted the same way: a
        scanner's logins, each tried once, never replace those kept.
        """
        cache = self.makeCache(NEGATIVE_SHARE)
        self.keep(cache, b"WHO nobody", "nobody", NOT_FOUND, found=False)
        for n in range(10):
            self.keep(cache, b"WHO scan%d" % n, f"scan{n}", NOT_FOUND, found=False)
        self.assertEqual(cache.get(b"WHO nobody"), NOT_FOUND)
        self.assertEqual([cache.get(b"WHO scan%d" % n) for n in range(10)], [None] * 10)
        self.keep(cache, b"WHO scan9", "scan9", NOT_FOUND, found=False)
        self.assertEqual((cache.get(b"WHO scan9"), cache.get(b"WHO nobody")), (NOT_FOUND, None))

    def test_theDoorkeeperForgetsWhenFull(self) -> None:
        """
        The users turned away are remembered up to one part in
        L{DOORKEEPER_SHARE} of the size: past that, it starts again, so a
        user asked again after that many others is turned away again.
        """
        size = 4 * DOORKEEPER_SHARE
        cache = self.makeCache(size)
        for n in range(size):
            self.keep(cache, b"WHO u%d" % n, f"u{n}", b"OK\r\n")
        remembered = size // DOORKEEPER_SHARE
        for n in range(remembered + 1):
            self.keep(cache, b"WHO new%d" % n, f"new{n}", b"OK new\r\n")
        self.keep(cache, b"WHO new0", "new0", b"OK new\r\n")
        self.assertIsNone(cache.get(b"WHO new0"))
        self.keep(cache, b"WHO new%d" % remembered, f"new{remembered}", b"OK new\r\n")
        self.assertEqual(cache.get(b"WHO new%d" % remembered), b"OK new\r\n")

    def test_aUserKeptIsStoredAgainWhenFull(self) -> None:
        """
        A user kept already has a new line of its kept at once, full or not.
        """
        cache = self.makeCache(1)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.assertEqual(cache.get(b"JSON yoen"), YOEN_JSON)

    def test_aUserFoundDropsItsRepliesAsNotFound(self) -> None:
        """
        A login found after it was not (or the other way round) keeps no
        reply of before, in any format: they are out of date.
        """
        cache = self.makeCache(10)
        self.keep(cache, b"WHO yoen", "yoen", NOT_FOUND, found=False)
        self.keep(cache, b"JSON yoen", "yoen", NOT_FOUND, found=False, command="JSON")
        self.keep(cache, b"who yoen", "yoen", YOEN_REPLY)
        self.assertEqual(
            (cache.get(b"WHO yoen"), cache.get(b"JSON yoen"), cache.get(b"who yoen")),
            (None, None, YOEN_REPLY),
        )
        self.assertEqual(len(cache), 1)
        self.keep(cache, b"JSON yoen", "yoen", NOT_FOUND, found=False, command="JSON")
        self.assertEqual((cache.get(b"who yoen"), cache.get(b"JSON yoen")), (None, NOT_FOUND))
        self.assertEqual(len(cache), 1)

    def test_hitsAreCountedByWhatTheyAnswer(self) -> None:
        """
        Every request answered from the cache is a hit, and counts as the
        request it answered, by command and result.
        """
        cache = self.makeCache(10)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.keep(cache, b"WHO nobody", "nobody", NOT_FOUND, found=False)
        self.keep(cache, b"JSON nobody", "nobody", NOT_FOUND, found=False, command="JSON")
        asked = [b"WHO yoen"] * 3 + [b"JSON yoen"] * 2 + [b"WHO nobody", b"JSON nobody", b"WHO esteban"]
        for line in asked:
            cache.get(line)
        self.assertEqual(cache.counters.cacheHits, 7)
        self.assertEqual(
            cache.counters.requestCounts(),
            {("WHO", "ok"): 3, ("JSON", "ok"): 2, ("WHO", "not-found"): 1, ("JSON", "not-found"): 1},
        )


class ReplyCacheUsersTests(UsersTestsMixin, SynchronousTestCase):
    """
    L{UsersTestsMixin} for L{ReplyCache}, and its TTL for every format.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def makeCache(self, size: int) -> ReplyCache:
        return ReplyCache(self.clock, size=size, ttl=1.0, counters=Counters())

    def test_ttlAppliesToEveryFormat(self) -> None:
        """
        A C{JSON} reply, found or not, expires as a C{WHO} reply does.
        """
        cache = self.makeCache(10)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.keep(cache, b"JSON nobody", "nobody", NOT_FOUND, found=False, command="JSON")
        self.clock.advance(0.999)
        self.assertEqual((cache.get(b"JSON yoen"), cache.get(b"JSON nobody")), (YOEN_JSON, NOT_FOUND))
        self.clock.advance(0.001)
        self.assertEqual((cache.get(b"JSON yoen"), cache.get(b"JSON nobody")), (None, None))

    def test_usersWhoseRepliesAllExpiredGoFirst(self) -> None:
        """
        When full, every user whose replies all expired goes, with all its
        lines, before any user with a reply still current.
        """
        cache = self.makeCache(3)
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.keep(cache, b"WHO esteban", "esteban", b"OK esteban\r\n")
        self.clock.advance(0.5)
        self.keep(cache, b"WHO mohamed", "mohamed", b"OK mohamed\r\n")
        self.clock.advance(0.7)
        self.keep(cache, b"JSON ghost", "ghost", b"OK ghost\r\n", command="JSON")
        self.assertEqual(len(cache), 2)
        self.assertEqual(cache.get(b"WHO mohamed"), b"OK mohamed\r\n")
        self.assertEqual(cache.get(b"JSON ghost"), b"OK ghost\r\n")


class WatchedReplyCacheUsersTests(UsersTestsMixin, SynchronousTestCase):
    """
    L{UsersTestsMixin} for L{WatchedReplyCache}, and its flush for every
    format.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.watch = FakeWatch()

    def makeCache(self, size: int) -> WatchedReplyCache:
        cache = WatchedReplyCache(self.clock, self.watch, size=size, counters=Counters())
        # The first request asks the watch; lookups stamped after it are kept.
        self.assertIsNone(cache.get(b"PING"))
        return cache

    def test_aChangeDropsRepliesOfEveryFormat(self) -> None:
        """
        A change in the data drops the C{JSON} replies, found or not, with
        the rest.
        """
        cache = self.makeCache(10)
        self.keep(cache, b"JSON yoen", "yoen", YOEN_JSON, command="JSON")
        self.keep(cache, b"JSON nobody", "nobody", NOT_FOUND, found=False, command="JSON")
        self.keep(cache, b"WHO yoen", "yoen", YOEN_REPLY)
        self.watch.current = 2
        self.clock.advance(CHECK_INTERVAL)
        self.assertEqual((cache.get(b"JSON yoen"), cache.get(b"JSON nobody")), (None, None))
        self.assertEqual((len(cache), cache.flushes), (0, 1))
