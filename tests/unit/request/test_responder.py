"""
L{Responder}: what each request line means, and its reply.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from avatard.counters import Counters
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
)


class StatsTests(SynchronousTestCase):
    """
    C{STATS} from a responder on its own.
    """

    def test_statsWithoutStatistics(self) -> None:
        """
        A responder on its own answers C{STATS} with its request counts.
        """
        clock = Clock()
        factory = WhoFactory(Responder(DictStore(), ClassicRenderer(), clock), clock)
        c = Connection(factory)
        c.send(b"WHO yoen\nWHO nobody\nSTATS\n")
        self.assertEqual(
            c.received().splitlines()[-1],
            b"OK requests.ok=2 requests.not-found=1 requests.bad-request=0 requests.unavailable=0 "
            b"requests.too-long=0 requests.timeout=0 requests.busy=0 requests.rate-limit=0",
        )


class JSONTests(ErrorsFailTestCase):
    """
    C{JSON <login>}: the C{WHO} lookup, answered as one JSON object.
    """

    def test_jsonAnswersTheUserAsOneObject(self) -> None:
        """
        The user found, as one compact JSON object after C{OK}, in any case
        of the command word.
        """
        c = connect()
        c.send(b"JSON yoen\njson esteban\n")
        self.assertEqual(
            c.received(),
            b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n'
            + 'OK {"login":"esteban","name":"Garcia Marquez","forname":"Estebán"}\r\n'.encode(),
        )

    def test_unknownLoginIsNotFound(self) -> None:
        """
        A login no user has is C{ERR not-found}, as for C{WHO}.
        """
        c = connect()
        c.send(b"JSON nobody\n")
        self.assertEqual(c.received(), NOT_FOUND)

    def test_badLoginIsWhosBadRequest(self) -> None:
        """
        A login that breaks the rules gets the C{ERR bad-request} C{WHO}
        gives it, and never reaches the store.
        """
        store = DictStore()
        c = connect(store)
        for login in (b"a@b", b"yo\x00en", b"\xe2\x80\xaeyoen", b"a" * 257):
            c.send(b"WHO " + login + b"\n")
            who = c.received()
            c.send(b"JSON " + login + b"\n")
            self.assertEqual(c.received(), who)
            self.assertTrue(who.startswith((b"ERR bad-request login", b"ERR bad-request forwarding")), who)
        self.assertEqual(store.lookups, [])

    def test_failureIsUnavailable(self) -> None:
        """
        A lookup that fails is answered C{ERR unavailable}, as for C{WHO},
        and logged once.
        """
        store = DictStore()
        store.error = OSError("disk I/O error")
        c = connect(store)
        c.send(b"JSON yoen\n")
        self.assertEqual(c.received(), UNAVAILABLE)
        self.assertErrorLoggedOnce("disk I/O error")

    def test_timeoutIsUnavailable(self) -> None:
        """
        A lookup the store does not answer within the query timeout is
        answered C{ERR unavailable}.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"JSON yoen\n")
        self.assertEqual(c.received(), b"")
        c.clock.advance(3.0)
        self.assertEqual(c.received(), UNAVAILABLE)
        self.assertErrorLoggedOnce("no answer within 3 s")

    def test_jsonIsCountedAsJSON(self) -> None:
        """
        C{JSON} requests are counted under C{JSON}, by result, those
        answered from the cache included; none counts as C{WHO}.
        """
        clock = Clock()
        store = DictStore()
        counters = Counters()
        cache = ReplyCache(clock, 10, 10.0, counters)
        c = Connection(WhoFactory(Responder(store, ClassicRenderer(), clock, 3.0, cache, counters), clock))
        c.send(b"JSON yoen\nJSON yoen\njson  yoen\nJSON nobody\nJSON nobody\nJSON\nJSON a@b\n")
        store.error = OSError("gone")
        c.send(b"JSON esteban\n")
        c.received()
        self.takeErrors()
        self.assertEqual(
            counters.requestCounts(),
            {
                ("JSON", "ok"): 3,
                ("JSON", "not-found"): 2,
                ("JSON", "bad-request"): 2,
                ("JSON", "unavailable"): 1,
            },
        )
        self.assertEqual((counters.cacheHits, len(cache)), (2, 2))


class WordTests(SynchronousTestCase):
    """
    How a request line is read into words.
    """

    def test_commandWordIsCaseInsensitive(self) -> None:
        """
        C{who}, C{Who} and C{WHO} are the same command; the login is not
        folded.
        """
        c = connect()
        c.send(b"who yoen\nWho yoen\nwHo YOEN\n")
        self.assertEqual(
            c.received(),
            TUTORIAL_REPLIES["yoen"] * 2 + b"ERR not-found no such login\r\n",
        )

    def test_blanksAroundWordsAreIgnored(self) -> None:
        """
        Extra spaces or tabs around and between the words do not matter.
        """
        c = connect()
        c.send(b"  WHO \t yoen  \r\n")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])


class CommandTests(SynchronousTestCase):
    """
    C{PING} and C{HELP}.
    """

    def test_ping(self) -> None:
        """
        C{PING} is answered C{OK pong}.
        """
        c = connect()
        c.send(b"PING\n")
        self.assertEqual(c.received(), b"OK pong\r\n")

    def test_helpListsTheCommandsOnOneLine(self) -> None:
        """
        C{HELP} is one C{OK} line naming every command.
        """
        c = connect()
        c.send(b"help\n")
        self.assertEqual(c.received(), b"OK commands: WHO <login>, JSON <login>, PING, STATS, HELP, QUIT\r\n")


class BadRequestTests(SynchronousTestCase):
    """
    Bad requests are answered C{ERR bad-request} and the connection carries
    on.
    """

    def assertBadRequest(self, request: bytes, message: bytes) -> None:
        c = connect()
        c.send(request + b"\n")
        self.assertEqual(c.received(), b"ERR bad-request " + message + b"\r\n")
        self.assertFalse(c.closing)
        c.send(b"WHO yoen\n")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

    def test_emptyLine(self) -> None:
        """
        A blank line is a request too, answered C{ERR bad-request}.
        """
        self.assertBadRequest(b"", b"empty request, try HELP")
        self.assertBadRequest(b" \t\r", b"empty request, try HELP")

    def test_unknownCommand(self) -> None:
        """
        An unknown command is not echoed back.
        """
        self.assertBadRequest(b"GET / HTTP/1.0", b"unknown command, try HELP")

    def test_whoWithoutLogin(self) -> None:
        """
        C{WHO} needs a login.
        """
        self.assertBadRequest(b"WHO", b"usage: WHO <login>")

    def test_jsonWithoutLoginOrWithMore(self) -> None:
        """
        C{JSON} needs one login, no more.
        """
        self.assertBadRequest(b"JSON", b"usage: JSON <login>")
        self.assertBadRequest(b"json yoen esteban", b"usage: JSON <login>")

    def test_whoWithExtraArgument(self) -> None:
        """
        C{WHO} takes one login only.
        """
        self.assertBadRequest(b"WHO yoen esteban", b"usage: WHO <login>")

    def test_commandWithUnexpectedArgument(self) -> None:
        """
        C{PING}, C{STATS}, C{HELP} and C{QUIT} take no argument; with one
        they are bad requests (and C{QUIT} does not close).
        """
        for command in (b"PING x", b"STATS all", b"HELP WHO", b"QUIT now"):
            self.assertBadRequest(command, b"this command takes no argument")

    def test_notUTF8(self) -> None:
        """
        Bytes that are not UTF-8 are a bad request.
        """
        self.assertBadRequest(b"WHO \xff\xfe", b"request is not valid UTF-8")

    def test_controlCharacterInLogin(self) -> None:
        """
        A login with a NUL or another control character never reaches the
        store.
        """
        store = DictStore()
        c = connect(store)
        c.send(b"WHO yo\x00en\nWHO yo\x1b[0men\n")
        self.assertEqual(c.received(), b"ERR bad-request login contains a control character\r\n" * 2)
        self.assertEqual(store.lookups, [])

    def test_forwardingRequest(self) -> None:
        """
        C{WHO user@host} (a forwarding request) is refused.
        """
        self.assertBadRequest(b"WHO yoen@example.com", b"forwarding (user@host) is not supported")

    def test_overLongLogin(self) -> None:
        """
        A login longer than 256 characters is refused before any lookup.
        """
        self.assertBadRequest(b"WHO " + b"a" * 257, b"login is longer than 256 characters")
