"""
The finger front-end (RFC 1288): queries, their answers, and the limits
every front-end shares.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from avatard.counters import Counters
from avatard.networks import Networks
from avatard.protocol import finger
from avatard.protocol.connections import Connections
from avatard.protocol.factory import WhoFactory
from avatard.protocol.finger import FingerFactory, FingerProtocol, answerQuery, fingerLookup, found
from avatard.protocol.limits import Limits
from avatard.protocol.linger import LINGER
from avatard.rates import Rate
from avatard.request.cache import ReplyCache
from avatard.request.observe import IRequestObserver
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import PEER, Connection, DictStore, ErrorsFailTestCase

YOEN = b"Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n"


@implementer(IRequestObserver)
class RecordingObserver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, bytes]] = []

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        self.seen.append((peer, command, result, line))


class Lookups:
    """
    Answers logins as told: C{yoen} at once, C{slow} later, the rest not
    found.
    """

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.later: list[Deferred[bytes]] = []

    def __call__(self, login: str) -> bytes | Deferred[bytes]:
        self.asked.append(login)
        if login == "yoen":
            return YOEN
        if login == "slow":
            d: Deferred[bytes] = Deferred()
            self.later.append(d)
            return d
        return finger.NOT_FOUND


class FingerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters = Counters()
        self.connections = Connections(self.clock, Limits(maxLine=64, idleTimeout=10), self.counters)
        self.lookups = Lookups()
        self.observer = RecordingObserver()
        self.factory = FingerFactory(
            self.lookups, self.clock, self.connections, self.observer, self.clock.seconds
        )

    def connect(self) -> tuple[FingerProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(PEER)
        assert isinstance(protocol, FingerProtocol)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def ask(self, data: bytes) -> StringTransport:
        """
        @return: the transport of a new connection that sent C{data}.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(data)
        return transport


class QueryTests(FingerTestCase):
    """
    What each query of RFC 1288's grammar is answered.
    """

    def test_loginIsAnsweredThenClosed(self) -> None:
        """
        C{login CRLF} answers the rendered text, without C{OK }, and closes.
        """
        transport = self.ask(b"yoen\r\n")
        self.assertEqual(transport.value(), YOEN)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.lookups.asked, ["yoen"])

    def test_verboseQueryAnswersTheSame(self) -> None:
        """
        C{/W login} (what C{finger -l} sends) answers as C{login} does,
        whatever the spaces and case of C{/W}; a bare LF ends a query too.
        """
        for query in (b"/W yoen\r\n", b"/w   yoen\n", b"  yoen \t\r\n"):
            self.assertEqual(self.ask(query).value(), YOEN, query)

    def test_unknownLoginIsOneLine(self) -> None:
        """
        A login nobody has is answered with the fixed not-found line.
        """
        self.assertEqual(self.ask(b"nobody\r\n").value(), b"finger: no such user\r\n")

    def test_listingIsRefused(self) -> None:
        """
        An empty query, with or without C{/W}, asks for every user: refused
        with one line, and nothing is looked up.
        """
        for query in (b"\r\n", b"/W\r\n", b"  \r\n"):
            transport = self.ask(query)
            self.assertEqual(transport.value(), b"finger: listing users is refused, ask for one login\r\n")
            self.assertTrue(transport.disconnecting)
        self.assertEqual(self.lookups.asked, [])

    def test_forwardingIsRefused(self) -> None:
        """
        A query naming a host (C{login@host}, C{@host}, a chain) is a
        forwarding request: refused with one line.
        """
        for query in (b"yoen@example.org\r\n", b"@example.org\r\n", b"/W yoen@a@b\r\n"):
            self.assertEqual(self.ask(query).value(), b"finger: forwarding is refused\r\n", query)
        self.assertEqual(self.lookups.asked, [])

    def test_malformedQueries(self) -> None:
        """
        Two logins, a login that breaks the rules (its problem escaped for
        the terminal) and bytes that are not UTF-8 each get one line.
        """
        self.assertEqual(self.ask(b"yoen esteban\r\n").value(), b"finger: ask for one login per query\r\n")
        self.assertEqual(
            self.ask(b"yo\x1b[31men\r\n").value(), b"finger: login contains a control character\r\n"
        )
        self.assertEqual(self.ask(b"\xff\xfe\r\n").value(), b"finger: query is not valid UTF-8\r\n")
        self.assertEqual(self.lookups.asked, [])

    def test_onlyTheFirstQueryIsAnswered(self) -> None:
        """
        What follows the first query, in the same read or later, is
        discarded, not answered.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"slow\r\nnobody\r\n")
        protocol.dataReceived(b"esteban\r\n")
        self.lookups.later[0].callback(YOEN)
        self.assertEqual(transport.value(), YOEN)
        self.assertEqual(self.lookups.asked, ["slow"])

    def test_answerThatWaitsIsWrittenWhenKnown(self) -> None:
        """
        An answer the lookup gives later is written then, and the
        connection closed after it, not before.
        """
        transport = self.ask(b"slow\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.lookups.later[0].callback(b"Mr 'S Low' is connected under 'slow'\r\n")
        self.assertEqual(transport.value(), b"Mr 'S Low' is connected under 'slow'\r\n")
        self.assertTrue(transport.disconnecting)

    def test_answerToALostConnectionIsNotWritten(self) -> None:
        """
        A client gone before its answer came gets nothing written.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"slow\r\n")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.lookups.later[0].callback(YOEN)
        self.assertEqual(transport.value(), b"")

    def test_foundTextIsMadeTerminalSafe(self) -> None:
        """
        The answer for a user found escapes what a terminal would obey.
        """
        self.assertEqual(found("Mr '\x1b[2J' is \u202econnected"), b"Mr '\\x1b[2J' is \\u202econnected\r\n")

    def test_answerQueryPassesOnlyALoginToTheLookup(self) -> None:
        """
        L{answerQuery} strips C{/W} and spaces before the lookup sees the
        login.
        """
        self.assertEqual(answerQuery(b"/W  yoen  ", self.lookups), YOEN)
        self.assertEqual(self.lookups.asked, ["yoen"])


class LimitTests(FingerTestCase):
    """
    The limits every front-end shares: line length, idle timeout,
    connections.
    """

    def test_overlongQueryIsRefused(self) -> None:
        """
        A query longer than C{--max-line}, with or without its line ending,
        gets one line and the connection closes; nothing is looked up.
        """
        for data in (b"y" * 65 + b"\r\n", b"y" * 200):
            transport = self.ask(data)
            self.assertEqual(transport.value(), b"finger: query too long\r\n")
            self.assertTrue(transport.disconnecting)
        self.assertEqual(self.ask(b"y" * 64 + b"\r\n").value(), b"finger: no such user\r\n")

    def test_silentClientTimesOut(self) -> None:
        """
        A client that sends no query within the idle timeout is told so and
        the connection closed; one that sent its query is not.
        """
        _, silent = self.connect()
        slow = self.ask(b"slow\r\n")
        self.clock.advance(10.2)
        self.assertEqual(silent.value(), b"finger: no query received in time\r\n")
        self.assertTrue(silent.disconnecting)
        self.assertEqual(slow.value(), b"")
        self.assertFalse(slow.disconnecting)

    def test_queryCutShortByTheEndOfInputIsAnswered(self) -> None:
        """
        A client that half-closes after a query without its line ending is
        answered; one that sent nothing is let go without a word.
        """
        protocol, transport = self.connect()
        self.assertIs(IHalfCloseableProtocol(protocol), protocol)
        protocol.dataReceived(b"yoen")
        protocol.readConnectionLost()
        self.assertEqual(transport.value(), YOEN)
        protocol, transport = self.connect()
        protocol.readConnectionLost()
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_connectionLimitIsSharedWithTheWhoProtocol(self) -> None:
        """
        C{--max-connections} counts WHO and finger connections together: a
        finger client over it gets one line and is counted as refused.
        """
        connections = Connections(self.clock, Limits(maxConnections=1), self.counters)
        who = WhoFactory(
            Responder(DictStore(), ClassicRenderer(), self.clock), self.clock, connections=connections
        )
        Connection(who)
        fingerFactory = FingerFactory(self.lookups, self.clock, connections)
        transport = StringTransport()
        refused = fingerFactory.buildProtocol(PEER)
        assert refused is not None
        refused.makeConnection(transport)
        self.assertEqual(transport.value(), b"finger: too many connections, retry later\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.counters.connectionsRefused, 1)
        self.assertEqual(self.counters.requests["finger", "busy"], 1)


class ClientRuleTests(FingerTestCase):
    """
    C{--allow} and C{--rate-limit} on the finger front-end.
    """

    def factoryWith(self, limits: Limits) -> FingerFactory:
        connections = Connections(self.clock, limits, self.counters)
        return FingerFactory(self.lookups, self.clock, connections, self.observer, self.clock.seconds)

    def test_deniedIsOneFingerLineBeforeAnyQuery(self) -> None:
        """
        A client outside C{--allow} gets finger's own line at once, its
        query is never looked up, and it is counted as denied; the close
        lingers, so that a client that sent its query reads the line.
        """
        factory = self.factoryWith(Limits(allow=Networks.parse(["198.51.100.0/24"])))
        protocol = factory.buildProtocol(PEER)
        transport = HalfClosingTransport()
        with capturedLogs():
            protocol.makeConnection(transport)
        protocol.dataReceived(b"yoen\r\n")
        self.assertEqual(transport.value(), b"finger: not allowed from this address\r\n")
        self.assertTrue(transport.writeClosed)
        self.assertEqual(self.lookups.asked, [])
        self.assertEqual((self.counters.connectionsDenied, self.counters.requestCounts()), (1, {}))

    def test_queriesPastTheBudget(self) -> None:
        """
        Each query takes a token of its client's budget: past it, the
        answer is finger's own line, with no lookup, counted and observed
        as C{rate-limit}; the budget comes back with time.
        """
        factory = self.factoryWith(Limits(maxLine=64, rate=Rate(2, 10)))
        answers = []
        for _ in range(3):
            protocol = factory.buildProtocol(PEER)
            transport = StringTransport(peerAddress=PEER)
            protocol.makeConnection(transport)
            protocol.dataReceived(b"yoen\r\n")
            answers.append(transport.value())
        self.assertEqual(answers, [YOEN, YOEN, b"finger: too many queries, retry later\r\n"])
        self.assertEqual(self.lookups.asked, ["yoen", "yoen"])
        self.assertEqual(self.counters.requests["finger", "rate-limit"], 1)
        self.assertEqual(self.observer.seen[-1][1:3], ("FINGER", "rate-limit"))
        self.clock.advance(5)
        protocol = factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        protocol.dataReceived(b"yoen\r\n")
        self.assertEqual(transport.value(), YOEN)


class HalfClosingTransport(StringTransport):
    """
    A transport that can shut down its sending side alone, as TCP's can.
    """

    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


class ClosingTests(FingerTestCase):
    """
    How a connection closes after its answer.
    """

    def test_closeLingersWhileTheClientMaySend(self) -> None:
        """
        After the answer the server shuts down its sending side and goes on
        reading (and discarding) for at most L{LINGER} seconds, so that a
        client still sending does not get a reset that destroys its answer.
        """
        protocol = self.factory.buildProtocol(PEER)
        assert protocol is not None
        transport = HalfClosingTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"yoen\r\nmore")
        self.assertEqual(transport.value(), YOEN)
        self.assertTrue(transport.writeClosed)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"still more\r\n")
        self.clock.advance(LINGER)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.lookups.asked, ["yoen"])

    def test_clientThatEndedItsInputIsClosedAtOnce(self) -> None:
        """
        A client that has ended its input can send nothing more: the
        connection closes as soon as the answer is written.
        """
        protocol = self.factory.buildProtocol(PEER)
        assert isinstance(protocol, FingerProtocol)
        transport = HalfClosingTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"slow\r\n")
        protocol.readConnectionLost()
        self.lookups.later[0].callback(YOEN)
        self.assertFalse(transport.writeClosed)
        self.assertTrue(transport.disconnecting)


class CountingTests(FingerTestCase):
    """
    What is counted and told to the observer.
    """

    def test_refusalsAreCountedAndObservedAsFinger(self) -> None:
        """
        Answers the front-end gives itself are counted under C{finger} by
        result, and told to the observer as C{FINGER}; those of lookups are
        left to the lookup path to count.
        """
        self.ask(b"\r\n")
        self.ask(b"yoen@host\r\n")
        self.ask(b"y" * 100)
        self.connect()
        self.clock.advance(11)
        self.ask(b"yoen\r\n")
        self.assertEqual(
            dict(self.counters.requests),
            {("finger", "bad-request"): 2, ("finger", "too-long"): 1, ("finger", "timeout"): 1},
        )
        self.assertEqual(
            [(command, result, line) for _, command, result, line in self.observer.seen],
            [
                ("FINGER", "bad-request", b""),
                ("FINGER", "bad-request", b"yoen@host"),
                ("FINGER", "too-long", b"y" * 64),
                ("FINGER", "timeout", b""),
                ("FINGER", "ok", b"yoen"),
            ],
        )
        self.assertEqual({peer for peer, _, _, _ in self.observer.seen}, {"192.0.2.1:40000"})


class DrainTests(FingerTestCase):
    """
    How finger connections end at shutdown.
    """

    def test_waitingForAQueryClosesAtOnceAnsweringClosesWhenAnswered(self) -> None:
        """
        At shutdown a connection with no query closes at once; one whose
        answer is on its way is answered, then closes, and the drain ends
        once both are gone.
        """
        idle, idleTransport = self.connect()
        busy, busyTransport = self.connect()
        busy.dataReceived(b"slow\r\n")
        drained = self.connections.drain(5)
        self.assertTrue(idleTransport.disconnecting)
        self.assertFalse(busyTransport.disconnecting)
        self.assertEqual(busy.unanswered(), 1)
        idle.connectionLost(Failure(ConnectionDone()))
        self.assertNoResult(drained)
        self.lookups.later[0].callback(YOEN)
        self.assertEqual(busyTransport.value(), YOEN)
        self.assertEqual(busy.unanswered(), 0)
        busy.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(drained)
        self.assertEqual(self.counters.connectionsOpen, 0)


class LookupPathTests(ErrorsFailTestCase):
    """
    L{fingerLookup}: finger's answers through the daemon's lookup path,
    its cache and its counters.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.counters = Counters()
        self.store = DictStore()
        self.cache = ReplyCache(self.clock, 10, 60.0, self.counters)
        self.responder = Responder(self.store, ClassicRenderer(), self.clock, 3.0, self.cache, self.counters)
        self.lookup = fingerLookup(self.responder.whoPath, ClassicRenderer())

    def test_foundNotFoundAndCachedAnswersAreCountedAsFinger(self) -> None:
        """
        A user found is answered with what C{WHO} renders, without C{OK };
        a login nobody has with the not-found line; the second query of a
        login comes from the cache, shared with C{WHO} but under a key of
        its own; all count under C{finger}.
        """
        self.assertEqual(self.lookup("yoen"), YOEN)
        self.assertEqual(self.lookup("nobody"), b"finger: no such user\r\n")
        self.assertEqual(self.lookup("yoen"), YOEN)
        self.assertEqual(self.store.lookups, ["yoen", "nobody"])
        self.assertEqual(self.responder.respond(b"WHO yoen"), b"OK " + YOEN)
        self.assertEqual(len(self.cache), 2)
        self.assertEqual(
            self.counters.requestCounts(),
            {("finger", "ok"): 2, ("finger", "not-found"): 1, ("WHO", "ok"): 1},
        )
        self.assertEqual(self.counters.answered("finger"), 3)

    def test_databaseFailureIsOneLine(self) -> None:
        """
        While the database fails, a query is answered with the unavailable
        line, counted, and the failure logged once.
        """
        self.store.error = OSError("disk I/O error")
        self.assertEqual(
            self.lookup("yoen"), b"finger: the directory cannot be read right now, retry later\r\n"
        )
        self.assertEqual(self.counters.requestCounts(), {("finger", "unavailable"): 1})
        self.assertErrorLoggedOnce("disk I/O error")
