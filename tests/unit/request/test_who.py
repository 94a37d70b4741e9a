"""
The C{WHO} path: from a login to its reply, at once when it can be, and
never later than C{--query-timeout}.
"""

from __future__ import annotations

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore, IImmediateLookup, WouldBlock
from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.request.cache import ReplyCache
from avatard.request.render import ClassicRenderer
from avatard.request.replies import NOT_FOUND, UNAVAILABLE
from avatard.request.responder import Responder
from tests.helpers import (
    TUTORIAL_REPLIES,
    Connection,
    ControlledStore,
    DictStore,
    ErrorsFailTestCase,
    connect,
    deferred,
)

YOEN = Avatar("yoen", "Van der Veld", "Yoen")
YOEN_REPLY = TUTORIAL_REPLIES["yoen"]


class ResponderCacheTests(ErrorsFailTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.store = ControlledStore()
        self.cache = ReplyCache(self.clock, size=10, ttl=1.0)
        self.responder = Responder(self.store, ClassicRenderer(), self.clock, 3.0, self.cache)

    def test_cachedReplyIsAnsweredAtOnceWithoutALookup(self) -> None:
        """
        A second C{WHO} for a login just looked up is answered with the
        same bytes, synchronously, without asking the store.
        """
        first = deferred(self.responder.respond(b"WHO yoen"))
        self.store.answer(0, YOEN)
        self.assertEqual(self.successResultOf(first), YOEN_REPLY)
        self.assertEqual(self.responder.respond(b"WHO yoen"), YOEN_REPLY)
        self.assertEqual(self.store.pending, [])

    def test_notFoundIsCachedToo(self) -> None:
        """
        A login not found is cached as such: the second C{WHO} for it is
        answered C{ERR not-found} at once.
        """
        first = deferred(self.responder.respond(b"WHO nobody"))
        self.store.answer(0, None)
        self.assertEqual(self.successResultOf(first), NOT_FOUND)
        self.assertEqual(self.responder.respond(b"WHO nobody"), NOT_FOUND)

    def test_stalenessIsCountedFromTheStartOfTheLookup(self) -> None:
        """
        A lookup answered 0.8 s after it began gives a reply that is used
        for 0.2 s more, then the store is asked again.
        """
        first = deferred(self.responder.respond(b"WHO yoen"))
        self.clock.advance(0.8)
        self.store.answer(0, YOEN)
        self.successResultOf(first)
        self.clock.advance(0.19)
        self.assertEqual(self.responder.respond(b"WHO yoen"), YOEN_REPLY)
        self.clock.advance(0.01)
        again = deferred(self.responder.respond(b"WHO yoen"))
        self.assertNoResult(again)
        self.assertEqual([login for login, _ in self.store.pending], ["yoen"])

    def test_failuresAreNotCached(self) -> None:
        """
        A failed lookup is answered C{ERR unavailable}, logged once with its
        cause, and leaves nothing cached: the next request asks the store
        again.
        """
        first = deferred(self.responder.respond(b"WHO yoen"))
        self.store.fail(0, OSError("disk I/O error"))
        self.assertEqual(self.successResultOf(first), UNAVAILABLE)
        self.assertErrorLoggedOnce("disk I/O error")
        again = deferred(self.responder.respond(b"WHO yoen"))
        self.store.answer(0, YOEN)
        self.assertEqual(self.successResultOf(again), YOEN_REPLY)

    def test_timedOutLookupIsNotCached(self) -> None:
        """
        A lookup answered C{ERR unavailable} for its timeout (logged once)
        caches nothing, even if the store's answer arrives later.
        """
        first = deferred(self.responder.respond(b"WHO yoen"))
        self.clock.advance(3.0)
        self.assertEqual(self.successResultOf(first), UNAVAILABLE)
        self.assertErrorLoggedOnce("no answer within 3 s")
        self.assertEqual(len(self.cache), 0)

    def test_withoutACacheEveryRequestIsALookup(self) -> None:
        """
        Without a cache, every C{WHO} asks the store, the same login
        included.
        """
        responder = Responder(self.store, ClassicRenderer(), self.clock, 3.0)
        for _ in range(2):
            d = deferred(responder.respond(b"WHO yoen"))
            self.store.answer(0, YOEN)
            self.assertEqual(self.successResultOf(d), YOEN_REPLY)
        self.assertEqual(self.store.pending, [])


class ImmediateAnswerTests(ErrorsFailTestCase):
    """
    A store that answers at once is answered with reply bytes, not a
    L{Deferred}, and no timeout is set for it.
    """

    def test_answerIsTheReplyItself(self) -> None:
        """
        The reply to a lookup the store answered at once is the reply
        itself, found or not, and no timeout is left behind.
        """
        clock = Clock()
        responder = Responder(DictStore(), ClassicRenderer(), clock, 3.0)
        self.assertEqual(responder.respond(b"WHO yoen"), YOEN_REPLY)
        self.assertEqual(responder.respond(b"WHO nobody"), NOT_FOUND)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_immediateFailureIsUnavailable(self) -> None:
        """
        A lookup that fails at once is answered C{ERR unavailable} at once,
        and logged once: one line naming the cause, no traceback, no other
        error.
        """
        clock = Clock()
        store = DictStore()
        store.lookup = lambda login: fail(OSError("disk I/O error"))  # type: ignore[method-assign]
        responder = Responder(store, ClassicRenderer(), clock, 3.0)
        self.assertEqual(responder.respond(b"WHO yoen"), UNAVAILABLE)
        self.assertErrorLoggedOnce("disk I/O error")

    def test_failuresAreLoggedUnderTheirKnownName(self) -> None:
        """
        Database failures are logged under the name operators' log filters
        know, C{avatard.commands.Responder}.
        """
        store = DictStore()
        store.lookup = lambda login: fail(OSError("disk I/O error"))  # type: ignore[method-assign]
        Responder(store, ClassicRenderer(), Clock(), 3.0).respond(b"WHO yoen")
        self.assertEqual([e["log_namespace"] for e in self.takeErrors()], ["avatard.commands.Responder"])


@implementer(IImmediateLookup)
class ImmediateStore(ControlledStore):
    """
    A store that answers at once from C{now}, or says it would block.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now: dict[str, Avatar | None] = {}

    def lookupNow(self, login: str) -> Avatar | None:
        if login not in self.now:
            raise WouldBlock()
        return self.now[login]


class LookupNowTests(ErrorsFailTestCase):
    """
    The responder asks a store that can answer at once before it asks
    through a L{Deferred}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.store = ImmediateStore()
        self.cache = ReplyCache(self.clock, size=10, ttl=1.0)
        self.responder = Responder(self.store, ClassicRenderer(), self.clock, 3.0, self.cache)

    def test_immediateAnswerIsRepliedAndCached(self) -> None:
        """
        A store that can answer at once is asked at once, never through a
        L{Deferred}, and its answers, found or not, are cached.
        """
        self.store.now = {"yoen": YOEN, "nobody": None}
        self.assertEqual(self.responder.respond(b"WHO yoen"), YOEN_REPLY)
        self.assertEqual(self.responder.respond(b"WHO nobody"), NOT_FOUND)
        self.assertEqual(self.store.pending, [])
        self.assertEqual(len(self.cache), 2)

    def test_wouldBlockFallsBackToTheDeferredPath(self) -> None:
        """
        A store that would block is asked through a L{Deferred}, and the
        reply comes when it answers.
        """
        d = deferred(self.responder.respond(b"WHO yoen"))
        self.assertEqual([login for login, _ in self.store.pending], ["yoen"])
        self.store.answer(0, YOEN)
        self.assertEqual(self.successResultOf(d), YOEN_REPLY)

    def test_rendererFailureIsUnavailable(self) -> None:
        """
        A renderer that raises on an immediate answer gives C{ERR
        unavailable}, logged, never an exception out of the responder.
        """
        self.store.now = {"yoen": YOEN}
        renderer = ClassicRenderer()
        renderer.render = lambda avatar: 1 / 0  # type: ignore[assignment, method-assign, return-value]
        responder = Responder(self.store, renderer, self.clock, 3.0)
        with capturedLogs() as events:
            self.assertEqual(responder.respond(b"WHO yoen"), UNAVAILABLE)
        self.assertEqual(len(events), 1)
        self.assertErrorLoggedOnce("division by zero")


class WhoTests(SynchronousTestCase):
    """
    C{WHO <login>}.
    """

    def test_fakeStoresProvideTheInterface(self) -> None:
        """
        The fakes these tests use are real L{IAvatarStore} providers.
        """
        self.assertTrue(verifyObject(IAvatarStore, DictStore()))
        self.assertTrue(verifyObject(IAvatarStore, ControlledStore()))

    def test_tutorialUsersRenderByteForByte(self) -> None:
        """
        The three users of the original tutorial render exactly as it did,
        UTF-8, each reply ending in CRLF; LF and CRLF requests alike.
        """
        c = connect()
        c.send(b"WHO yoen\nWHO esteban\r\nWHO mohamed\n")
        self.assertEqual(
            c.received(),
            TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"] + TUTORIAL_REPLIES["mohamed"],
        )
        self.assertFalse(c.closing)

    def test_unknownLoginIsNotFoundAndConnectionStaysOpen(self) -> None:
        """
        An unknown login is answered C{ERR not-found}; the connection goes
        on serving.
        """
        c = connect()
        c.send(b"WHO nobody\nWHO yoen\n")
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n" + TUTORIAL_REPLIES["yoen"])
        self.assertFalse(c.closing)

    def test_databaseTextIsMadeTerminalSafe(self) -> None:
        """
        Control characters stored in the database are escaped: a reply stays
        one line and cannot carry terminal escapes.
        """
        store = DictStore([("evil", "Bad\r\nOK forged", "\x1b[2J\x9b")])
        c = connect(store)
        c.send(b"WHO evil\n")
        self.assertEqual(
            c.received(),
            b"OK Mr '\\x1b[2J\\x9b Bad\\x0d\\x0aOK forged' is connected under 'evil'\r\n",
        )

    def test_loginReachesTheStoreUnchanged(self) -> None:
        """
        Quotes, C{%}, C{_} and C{*} are ordinary characters of a login.
        """
        store = DictStore([("o'brien%_*", "Brien", "O")])
        c = connect(store)
        c.send(b"WHO o'brien%_*\n")
        self.assertEqual(c.received(), b"OK Mr 'O Brien' is connected under 'o'brien%_*'\r\n")
        self.assertEqual(store.lookups, ["o'brien%_*"])


class FaultTests(SynchronousTestCase):
    """
    A failing store.
    """

    def test_storeFailureIsUnavailableAndConnectionStaysOpen(self) -> None:
        """
        A lookup that fails is answered C{ERR unavailable}; the connection
        stays open and serves again once the store works.
        """
        store = DictStore()
        c = connect(store)
        store.error = OSError("disk I/O error")
        with capturedLogs():
            c.send(b"WHO yoen\n")
        self.assertEqual(
            c.received(),
            b"ERR unavailable the directory cannot be read right now, retry later\r\n",
        )
        self.assertFalse(c.closing)
        store.error = None
        with capturedLogs():
            c.send(b"WHO yoen\n")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

    def test_failuresAreLoggedOncePerEpisode(self) -> None:
        """
        Many failing lookups log one error naming the cause; the recovery is
        logged once, with how many lookups failed.
        """
        store = DictStore()
        c = connect(store)
        store.error = OSError("database is locked")
        with capturedLogs() as events:
            c.send(b"WHO yoen\n" * 50)
            store.error = None
            c.send(b"WHO yoen\n" * 5)
        errors = [e for e in events if e["log_level"] is LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["cause"], "database is locked")
        recoveries = [e for e in events if e.get("count") == 50]
        self.assertEqual(len(recoveries), 1)


class QueryTimeoutTests(SynchronousTestCase):
    """
    C{--query-timeout}: every request is answered in bounded time.
    """

    def test_slowLookupIsUnavailable(self) -> None:
        """
        A lookup with no answer within the query timeout is answered
        C{ERR unavailable}; the requests behind it are not held up longer.
        """
        store = ControlledStore()
        c = connect(store, queryTimeout=3)
        c.send(b"WHO yoen\nPING\n")
        with capturedLogs() as events:
            c.clock.advance(3)
        self.assertEqual(c.received(), UNAVAILABLE + b"OK pong\r\n")
        self.assertEqual([e["cause"] for e in events], ["no answer within 3 s"])
        self.assertFalse(c.closing)

    def test_lateAnswerIsDropped(self) -> None:
        """
        An answer arriving after the timeout is dropped: still one reply
        per request.
        """
        store = ControlledStore()
        c = connect(store, queryTimeout=1)
        c.send(b"WHO yoen\n")
        with capturedLogs():
            c.clock.advance(1)
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(c.received(), UNAVAILABLE)

    def test_timedOutLookupIsCancelled(self) -> None:
        """
        The timeout cancels the store's L{Deferred}, so that the store can
        skip work nobody waits for.
        """
        store = ControlledStore()
        c = connect(store, queryTimeout=1)
        c.send(b"WHO yoen\n")
        with capturedLogs():
            c.clock.advance(1)
        self.assertEqual(store.cancelled, ["yoen"])

    def test_rendererFailureIsUnavailable(self) -> None:
        """
        A renderer that raises yields C{ERR unavailable}, logged, not a
        missing reply.
        """

        class Broken(ClassicRenderer):
            def render(self, avatar: Avatar) -> str:
                raise ValueError("bad template")

        clock = Clock()
        factory = WhoFactory(Responder(DictStore(), Broken(), clock), clock)
        c = Connection(factory)
        with capturedLogs() as events:
            c.send(b"WHO yoen\nPING\n")
        self.assertEqual(c.received(), UNAVAILABLE + b"OK pong\r\n")
        self.assertEqual([e["cause"] for e in events], ["bad template"])


class FaultReportTests(SynchronousTestCase):
    """
    How database failures reach the log.
    """

    def test_flappingDatabaseIsReportedAFewTimesAMinute(self) -> None:
        """
        Episodes that follow a reported one within the report interval are
        counted and folded into the next report, not logged one by one; an
        outage still going on past the interval is reported.
        """
        store = DictStore()
        c = connect(store)
        clock = c.clock
        with capturedLogs() as events:
            for _ in range(20):
                store.error = OSError("disk I/O error")
                c.send(b"WHO yoen\n")
                store.error = None
                c.send(b"WHO yoen\n")
                clock.advance(0.25)
            store.error = OSError("disk I/O error")
            clock.advance(10)
            c.send(b"WHO yoen\n")
        errors = [e for e in events if e["log_level"] is LogLevel.error]
        self.assertEqual([e["earlier"] for e in errors], ["", " (19 lookups failed since the last report)"])
        recoveries = [e for e in events if "count" in e]
        self.assertEqual([e["count"] for e in recoveries], [1])
