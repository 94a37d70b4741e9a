"""
L{avatard.request.formats}, and the seam they plug into: one lookup path
(L{avatard.request.who.WhoPath.lookup}), several reply formats.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore, IReplyFormat
from avatard.model import Avatar
from avatard.request.cache import ReplyCache
from avatard.request.coalesce import CoalescingStore
from avatard.request.formats import JSONFormat, WhoFormat
from avatard.request.render import ClassicRenderer
from avatard.request.replies import NOT_FOUND, UNAVAILABLE
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, ControlledStore, ErrorsFailTestCase, deferred

YOEN = Avatar("yoen", "Van der Veld", "Yoen")

HOSTILE_NAMES = (
    "\x1b[2J\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "\u202eevil\u202c",
    "zero\u200bwidth\ufeff",
    "line\u2028para\u2029",
    "nul\x00del\x7f",
    "c1\x85\x9b31m",
    "tag\U000e0001\U000e0041",
    "\ufffd\ufffd",
    "quote\" back\\slash \\u0041 '",
    "CR\rLF\ntab\t",
    "Estebán 日本語 \U0001f600",
    "",
)
"""
Names a database may hold that a terminal must not see raw: escape
sequences, bidirectional overrides, zero-width and line-breaking
characters, controls, astral format characters (tags), U+FFFD (which bytes
that are not UTF-8 are read as), quotes and backslashes.
"""

UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def unsafeCharacters(text: str) -> list[str]:
    """
    @return: the characters of C{text} in the categories a terminal must not
        see raw.
    """
    return [c for c in text if unicodedata.category(c) in UNSAFE]


class FormatTests(SynchronousTestCase):
    """
    L{WhoFormat} and L{JSONFormat}.
    """

    def test_providersOfTheInterface(self) -> None:
        """
        Both formats are L{IReplyFormat} providers.
        """
        self.assertTrue(verifyObject(IReplyFormat, WhoFormat(ClassicRenderer())))
        self.assertTrue(verifyObject(IReplyFormat, JSONFormat()))

    def test_jsonIsOneCompactObjectInColumnOrder(self) -> None:
        """
        A user found is C{OK} and one compact JSON object, keys C{login},
        C{name}, C{forname} in that order, non-ASCII letters as UTF-8.
        """
        self.assertEqual(
            JSONFormat().found(YOEN), b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n'
        )
        self.assertEqual(
            JSONFormat().found(Avatar("esteban", "Garcia Marquez", "Estebán")),
            'OK {"login":"esteban","name":"Garcia Marquez","forname":"Estebán"}\r\n'.encode(),
        )

    def test_jsonWritesNullColumnsAsNull(self) -> None:
        """
        A C{NULL} name or forname is C{null}, told apart from empty text.
        """
        self.assertEqual(
            JSONFormat().found(Avatar("ghost", None, "")),
            b'OK {"login":"ghost","name":null,"forname":""}\r\n',
        )

    def test_jsonOfHostileNamesIsOneSafeLineThatReadsBack(self) -> None:
        """
        Whatever the names hold, the reply is one CRLF-terminated line of
        UTF-8 without a character a terminal must not see raw, and a JSON
        parser reads the stored values back from it.
        """
        for name in HOSTILE_NAMES:
            avatar = Avatar("o'brien%", name, name[::-1])
            reply = JSONFormat().found(avatar)
            self.assertTrue(reply.startswith(b"OK {"), reply)
            self.assertTrue(reply.endswith(b"}\r\n"), reply)
            text = reply[3:-2].decode("utf-8")
            self.assertEqual(unsafeCharacters(text), [], reply)
            self.assertNotIn("\r", text)
            self.assertNotIn("\n", text)
            self.assertEqual(
                json.loads(text), {"login": "o'brien%", "name": name, "forname": name[::-1]}, reply
            )

    def test_jsonEscapesAstralFormatCharactersAsSurrogatePairs(self) -> None:
        """
        An astral format character (U+E0001, LANGUAGE TAG) is written as a
        surrogate pair of escapes; other astral characters as they are.
        """
        reply = JSONFormat().found(Avatar("tag", "\U000e0001", "\U0001f600"))
        self.assertEqual(
            reply, 'OK {"login":"tag","name":"\\udb40\\udc01","forname":"\U0001f600"}\r\n'.encode()
        )

    def test_otherOutcomesAreWhosReplies(self) -> None:
        """
        C{JSON} answers a login not found, a failed lookup and a login
        that breaks the rules exactly as C{WHO} does.
        """
        who, js = WhoFormat(ClassicRenderer()), JSONFormat()
        self.assertEqual((js.notFound, js.unavailable), (NOT_FOUND, UNAVAILABLE))
        self.assertEqual((who.notFound, who.unavailable), (NOT_FOUND, UNAVAILABLE))
        self.assertEqual(js.badLogin("login is empty"), who.badLogin("login is empty"))
        self.assertEqual(js.badLogin("login is empty"), b"ERR bad-request login is empty\r\n")

    def test_whoIsTheRenderedTextMadeTerminalSafe(self) -> None:
        """
        C{WHO} writes the renderer's text after C{OK}, its unsafe
        characters as visible escapes.
        """
        who = WhoFormat(ClassicRenderer())
        self.assertEqual(who.found(YOEN), TUTORIAL_REPLIES["yoen"])
        self.assertEqual(
            who.found(Avatar("x", "\x1b[31m", "\u202e")),
            b"OK Mr '\\u202e \\x1b[31m' is connected under 'x'\r\n",
        )


@implementer(IReplyFormat)
class FingerFormat:
    """
    What a finger front-end could answer: the rendered text without C{OK},
    and its own lines for the other outcomes, counted under C{FINGER}.
    """

    command = "FINGER"
    notFound = b"finger: no such user\r\n"
    unavailable = b"finger: try again later\r\n"

    def found(self, avatar: Avatar) -> bytes:
        return ClassicRenderer().render(avatar).encode("utf-8") + b"\r\n"

    def badLogin(self, problem: str) -> bytes:
        return b"finger: " + problem.encode("utf-8") + b"\r\n"


FINGER_YOEN = b"Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n"


@implementer(IAvatarStore)
class BatchStore:
    """
    A store that records each C{lookupMany}, answered when told.
    """

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], Deferred[Mapping[str, Avatar]]]] = []

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        raise AssertionError("a coalescing store only asks for batches")

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        d: Deferred[Mapping[str, Avatar]] = Deferred()
        self.batches.append((list(logins), d))
        return d


class SeamTests(ErrorsFailTestCase):
    """
    Another format (a finger front-end's) on the same lookup path as C{WHO}
    and C{JSON}: its own replies, with the same cache, coalescing,
    timeouts, failure reports and counters.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.store = ControlledStore()
        self.cache = ReplyCache(self.clock, size=1, ttl=10.0)
        self.responder = Responder(
            self.store, ClassicRenderer(), self.clock, 3.0, self.cache, self.cache.counters
        )
        self.finger = FingerFormat()
        self.assertTrue(verifyObject(IReplyFormat, self.finger))

    def test_anotherFormatSharesItsUsersCacheEntry(self) -> None:
        """
        A finger reply is cached under its own key, in the entry of its
        user beside the C{WHO} and C{JSON} replies, found again by that key
        and counted under C{FINGER}.
        """
        who = deferred(self.responder.respond(b"WHO yoen"))
        self.store.answer(0, YOEN)
        finger = deferred(self.responder.whoPath.lookup(self.finger, "yoen", b"finger\nyoen"))
        self.store.answer(0, YOEN)
        js = deferred(self.responder.respond(b"JSON yoen"))
        self.store.answer(0, YOEN)
        self.assertEqual(self.successResultOf(who), TUTORIAL_REPLIES["yoen"])
        self.assertEqual(self.successResultOf(finger), FINGER_YOEN)
        self.successResultOf(js)
        self.assertEqual(len(self.cache), 1)
        self.assertEqual(self.cache.get(b"finger\nyoen"), FINGER_YOEN)
        self.assertEqual(self.responder.respond(b"WHO yoen"), TUTORIAL_REPLIES["yoen"])
        self.assertEqual(
            self.responder.counters.requestCounts(),
            {("WHO", "ok"): 2, ("FINGER", "ok"): 2, ("JSON", "ok"): 1},
        )

    def test_anotherFormatsOutcomesAreItsOwnReplies(self) -> None:
        """
        A login not found, a login that breaks the rules and a lookup that
        times out are answered in the format's own lines, counted under
        its command.
        """
        path = self.responder.whoPath
        notFound = deferred(path.lookup(self.finger, "nobody", b"finger\nnobody"))
        self.store.answer(0, None)
        self.assertEqual(self.successResultOf(notFound), FingerFormat.notFound)
        self.assertEqual(
            path.lookup(self.finger, "a@b", b"finger\na@b"),
            b"finger: forwarding (user@host) is not supported\r\n",
        )
        late = deferred(path.lookup(self.finger, "yoen", b"finger\nyoen"))
        self.clock.advance(3.0)
        self.assertEqual(self.successResultOf(late), FingerFormat.unavailable)
        self.assertErrorLoggedOnce("no answer within 3 s")
        self.assertEqual(
            self.responder.counters.requestCounts(),
            {("FINGER", "not-found"): 1, ("FINGER", "bad-request"): 1, ("FINGER", "unavailable"): 1},
        )

    def test_failuresOfEveryFormatAreOneEpisode(self) -> None:
        """
        Failed lookups of C{WHO}, C{JSON} and another format belong to one
        episode of failures, reported once.
        """
        path = self.responder.whoPath
        replies = [
            deferred(self.responder.respond(b"WHO yoen")),
            deferred(self.responder.respond(b"JSON yoen")),
            deferred(path.lookup(self.finger, "yoen", b"finger\nyoen")),
        ]
        for _ in replies:
            self.store.fail(0, OSError("disk I/O error"))
        self.assertEqual(
            [self.successResultOf(d) for d in replies], [UNAVAILABLE, UNAVAILABLE, FingerFormat.unavailable]
        )
        self.assertErrorLoggedOnce("disk I/O error")
        self.assertEqual(self.responder.counters.databaseErrors, 3)

    def test_lookupsOfOneLoginInAnyFormatShareOneQuery(self) -> None:
        """
        Through the coalescing store, C{WHO}, C{JSON} and another format
        asking for one login while a batch is at the store share one
        lookup of it in the next batch.
        """
        backend = BatchStore()
        responder = Responder(CoalescingStore(backend), ClassicRenderer(), self.clock, 3.0)
        first = deferred(responder.respond(b"WHO esteban"))
        replies = [
            deferred(responder.respond(b"WHO yoen")),
            deferred(responder.respond(b"JSON yoen")),
            deferred(responder.whoPath.lookup(self.finger, "yoen", b"finger\nyoen")),
        ]
        backend.batches[0][1].callback({})
        self.assertEqual([logins for logins, _ in backend.batches], [["esteban"], ["yoen"]])
        backend.batches[1][1].callback({"yoen": YOEN})
        self.assertEqual(self.successResultOf(first), NOT_FOUND)
        self.assertEqual(
            [self.successResultOf(d) for d in replies],
            [TUTORIAL_REPLIES["yoen"], JSONFormat().found(YOEN), FINGER_YOEN],
        )
