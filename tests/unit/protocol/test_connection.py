"""
L{avatard.protocol.connection}: one reply per request, in request order,
and how a connection closes; driven through StringTransport, no sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    ISSLTransport,
    ITCPTransport,
)
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides, implementer
from zope.interface.verify import verifyObject

from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.rates import Rate
from avatard.request.observe import IRequestObserver
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, Connection, ControlledStore, DictStore, connect


class OrderTests(SynchronousTestCase):
    """
    One reply per request, in request order.
    """

    def test_outOfOrderCompletionIsReorderedToRequestOrder(self) -> None:
        """
        When later lookups complete first, their replies wait until every
        earlier reply has been written.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\nWHO esteban\nWHO mohamed\n")
        self.assertEqual([login for login, _ in store.pending], ["yoen", "esteban", "mohamed"])
        store.answer(2, Avatar("mohamed", "Al Ghâlib", "Mohamed"))
        store.answer(1, Avatar("esteban", "Garcia Marquez", "Estebán"))
        self.assertEqual(c.received(), b"")
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(
            c.received(),
            TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"] + TUTORIAL_REPLIES["mohamed"],
        )

    def test_immediateRepliesWaitBehindPendingLookups(self) -> None:
        """
        A reply known at once (C{PING}, an error) is not written before the
        reply to an earlier C{WHO} still being looked up.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\nPING\nBOGUS\n")
        self.assertEqual(c.received(), b"")
        store.answer(0, None)
        self.assertEqual(
            c.received(),
            b"ERR not-found no such login\r\nOK pong\r\nERR bad-request unknown command, try HELP\r\n",
        )

    def test_repliesToTheRequestsOfOneReadAreWrittenTogether(self) -> None:
        """
        The replies to requests that arrive together and are answered at
        once go to the transport in one write, in order, ahead of the
        replies still owed.
        """
        store = ControlledStore()
        c = connect(DictStore())
        writes: list[bytes] = []
        c.transport.write = writes.append  # type: ignore[method-assign]
        c.transport.writeSequence = lambda data: writes.append(b"".join(data))  # type: ignore[method-assign]
        c.send(b"WHO yoen\nPING\nWHO nobody\n")
        self.assertEqual(
            writes, [TUTORIAL_REPLIES["yoen"] + b"OK pong\r\n" + b"ERR not-found no such login\r\n"]
        )
        c = connect(store)
        writes = []
        c.transport.writeSequence = lambda data: writes.append(b"".join(data))  # type: ignore[method-assign]
        c.send(b"PING\nWHO yoen\nPING\n")
        self.assertEqual(writes, [b"OK pong\r\n"])
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(writes, [b"OK pong\r\n", TUTORIAL_REPLIES["yoen"] + b"OK pong\r\n"])

    def test_replyAfterConnectionLostIsDropped(self) -> None:
        """
        A lookup that completes after the client has gone is dropped
        quietly, and the connection is forgotten: a shutdown has nothing
        left to wait for.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\n")
        c.lose()
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(c.received(), b"")
        self.successResultOf(c.factory.drain(1))


class QuitTests(SynchronousTestCase):
    """
    C{QUIT}: the client asks the server to close.
    """

    def test_quitSaysByeThenCloses(self) -> None:
        """
        C{QUIT} is answered C{OK bye}, then the server closes; requests sent
        after it are not answered.
        """
        c = connect()
        c.send(b"QUIT\nWHO yoen\n")
        self.assertEqual(c.received(), b"OK bye\r\n")
        self.assertTrue(c.closing)
        c.send(b"WHO yoen\n")
        self.assertEqual(c.received(), b"")

    def test_quitClosesOnlyAfterRepliesOwed(self) -> None:
        """
        C{QUIT} behind a pending lookup closes only once that reply is
        written.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\nQUIT\n")
        self.assertFalse(c.closing)
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"] + b"OK bye\r\n")
        self.assertTrue(c.closing)


class HalfCloseTests(SynchronousTestCase):
    """
    Clients that close their sending side right after their requests.
    """

    def halfCloseable(self, c: Connection) -> bool:
        """
        Whether a transport asking now would treat the end of the client's
        input as a half-close (as TCP transports ask: by adaptation).
        """
        adapted = IHalfCloseableProtocol(c.protocol, None)
        if adapted is None:
            return False
        self.assertIs(adapted, c.protocol)
        self.assertTrue(verifyObject(IHalfCloseableProtocol, adapted, tentative=True))
        return True

    def test_halfCloseWhileARequestIsAnswered(self) -> None:
        """
        While a reply is owed, the end of input is a half-close: the
        protocol hears of it and answers first.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\n")
        self.assertTrue(self.halfCloseable(c))
        store.answer(0, None)
        c.received()
        self.assertFalse(self.halfCloseable(c))

    def test_halfCloseWhileRepliesAreUnsent(self) -> None:
        """
        Replies the transport has not sent yet make the end of input a
        half-close; once the transport reports them sent, it is not.
        """
        c = connect()
        c.send(b"PING\n")
        self.assertTrue(self.halfCloseable(c))
        c.sent()
        self.assertFalse(self.halfCloseable(c))

    def reportSentWithinWrites(self, c: Connection) -> None:
        """
        Make C{c}'s transport report everything sent from within each write,
        as a transport that sends at once may.
        """
        transport = c.transport
        write, writeSequence = transport.write, transport.writeSequence

        def writeAndReport(data: bytes) -> None:
            write(data)
            c.sent()

        def writeSequenceAndReport(data: list[bytes]) -> None:
            writeSequence(data)
            c.sent()

        transport.write = writeAndReport  # type: ignore[method-assign]
        transport.writeSequence = writeSequenceAndReport  # type: ignore[method-assign]

    def test_repliesSentWithinTheWriteAreNotOwed(self) -> None:
        """
        A transport may report everything sent from within the write itself:
        a reply is counted as unsent before it is written, so such a report
        leaves nothing owed: for one request per read, several, or a reply
        that waited for its lookup.
        """
        for requests, replies in (
            (b"PING\n", b"OK pong\r\n"),
            (b"PING\nPING\n", b"OK pong\r\nOK pong\r\n"),
            (b"WHO yoen\n", b"ERR not-found no such login\r\n"),
        ):
            store = ControlledStore()
            c = connect(store)
            self.reportSentWithinWrites(c)
            c.send(requests)
            if store.pending:
                store.answer(0, None)
            self.assertEqual(c.transport.value(), replies)
            self.assertFalse(self.halfCloseable(c))

    def test_halfCloseWithAnUnterminatedLine(self) -> None:
        """
        An unterminated line is a request at the end of input: a half-close.
        """
        c = connect()
        c.send(b"WHO yo")
        self.assertTrue(self.halfCloseable(c))

    def test_endOfInputOwingNothingClosesOutright(self) -> None:
        """
        With nothing owed and everything sent, the end of input is left to
        the transport, which closes at once.
        """
        c = connect()
        c.send(b"PING\n")
        self.assertEqual(c.received(), b"OK pong\r\n")
        self.assertFalse(self.halfCloseable(c))

    def test_tlsIsAlwaysHalfCloseable(self) -> None:
        """
        A TLS transport never says when all is sent: the end of input is
        always handled as a half-close there.
        """
        c = connect(tls=True)
        self.assertTrue(self.halfCloseable(c))

    def test_repliesOwedAreWrittenBeforeClosing(self) -> None:
        """
        After the client's end of input, pending replies are still written,
        then the server closes.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\nWHO esteban\n")
        c.protocol.readConnectionLost()
        self.assertFalse(c.closing)
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertFalse(c.closing)
        store.answer(0, Avatar("esteban", "Garcia Marquez", "Estebán"))
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"])
        self.assertTrue(c.closing)

    def test_unterminatedLastLineIsARequest(self) -> None:
        """
        At the end of input, a last line without line ending is answered.
        """
        c = connect()
        c.send(b"PING\nWHO yoen")
        self.assertEqual(c.received(), b"OK pong\r\n")
        c.protocol.readConnectionLost()
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.closing)

    def test_endOfInputWithNothingOwedClosesAtOnce(self) -> None:
        """
        With nothing owed, the end of input closes the connection.
        """
        c = connect()
        c.protocol.readConnectionLost()
        self.assertTrue(c.closing)

    def test_clientThatStopsReadingIsClosed(self) -> None:
        """
        When the client can no longer receive, the server closes.
        """
        c = connect()
        c.protocol.writeConnectionLost()
        self.assertTrue(c.closing)


class CloseTests(SynchronousTestCase):
    """
    Closing is done once, however many reasons to close arrive.
    """

    def test_endOfInputAfterTooLong(self) -> None:
        """
        The client's end of input after an C{ERR too-long} close is
        harmless.
        """
        c = connect(maxLine=8)
        c.send(b"x" * 20)
        c.protocol.readConnectionLost()
        c.protocol.writeConnectionLost()
        self.assertEqual(c.received(), b"ERR too-long request line too long, closing\r\n")
        self.assertTrue(c.closing)


@implementer(ITCPTransport)
class HalfClosingTransport(StringTransport):
    """
    A StringTransport that can shut down its sending side alone, as TCP
    and UNIX transports (L{ITCPTransport}) can.
    """

    writeClosed = False
    noDelay = keepAlive = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True

    def getTcpNoDelay(self) -> bool:
        return self.noDelay

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled

    def getTcpKeepAlive(self) -> bool:
        return self.keepAlive

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive = enabled


class LingeringCloseTests(SynchronousTestCase):
    """
    Closing while the client may still be sending must not destroy the
    replies already sent: the server shuts down its sending side and drains
    the client's input for a while before it closes.
    """

    def connect(self, store: ControlledStore | None = None) -> tuple[Connection, HalfClosingTransport]:
        c = connect(store, limits=Limits(maxPending=1), queryTimeout=100)
        transport = HalfClosingTransport()
        c.transport = transport
        c.protocol.makeConnection(transport)
        return c, transport

    def test_quitShutsDownSendingAndKeepsReading(self) -> None:
        """
        After C{QUIT}, the server shuts down only its sending side and
        ignores what still comes; the client's own close completes the
        close.
        """
        c, transport = self.connect()
        c.send(b"QUIT\n")
        self.assertEqual(c.received(), b"OK bye\r\n")
        self.assertTrue(transport.writeClosed)
        self.assertFalse(transport.disconnecting)
        c.send(b"WHO yoen\n" * 100)
        self.assertEqual(c.received(), b"")
        c.protocol.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_pausedTransportReadsAgainToLinger(self) -> None:
        """
        A connection closed while reading was paused (here, by a shutdown
        while too many replies were owed) still answers the requests it had
        read, then resumes reading, so that what the client still sends is
        drained rather than left to cause a reset.
        """
        store = ControlledStore()
        c, transport = self.connect(store)
        c.send(b"WHO a\nWHO b\nWHO c\n")
        self.assertEqual(transport.producerState, "paused")
        c.protocol.finish()
        while store.pending:
            store.answer(0, None)
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n" * 3)
        self.assertTrue(transport.writeClosed)
        self.assertEqual(transport.producerState, "producing")

    def test_lingerIsBounded(self) -> None:
        """
        A client that never closes is closed after the linger time.
        """
        c, transport = self.connect()
        c.send(b"x" * 5000)
        self.assertEqual(c.received(), b"ERR too-long request line too long, closing\r\n")
        self.assertTrue(transport.writeClosed)
        c.clock.advance(1.9)
        self.assertFalse(transport.disconnecting)
        c.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)

    def test_tlsClosesThroughItsOwnLayer(self) -> None:
        """
        A TLS transport, whose C{loseWriteConnection} would shut down the
        TCP connection under it and cut off replies still in the TLS layer,
        is closed with its own C{loseConnection}.
        """
        c, transport = self.connect()
        directlyProvides(transport, ISSLTransport)
        c.send(b"QUIT\n")
        self.assertEqual(c.received(), b"OK bye\r\n")
        self.assertFalse(transport.writeClosed)
        self.assertTrue(transport.disconnecting)

    def test_noLingerOnceInputHasEnded(self) -> None:
        """
        When the client has already closed its side, the server simply
        closes.
        """
        c, transport = self.connect()
        c.send(b"PING\n")
        c.protocol.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.writeClosed)

    def test_lingerTimerGoesWithTheConnection(self) -> None:
        """
        No timer is left behind once the connection is gone.
        """
        c, _ = self.connect()
        c.send(b"QUIT\n")
        c.lose()
        self.assertEqual(c.clock.getDelayedCalls(), [])


RATE_LIMITED = b"ERR rate-limit too many requests, retry later\r\n"
PONG = b"OK pong\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"


@implementer(IRequestObserver)
class RecordingObserver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        self.seen.append((command, result, line))


class RateLimitTests(SynchronousTestCase):
    """
    C{--rate-limit}: a budget of requests per client, shared by its
    connections; requests past it are answered C{ERR rate-limit}, in their
    place, without a lookup, and the connection stays open.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = ControlledStore()
        self.observer = RecordingObserver()

    def factory(self, rate: str, store: object = None, **limits: Any) -> WhoFactory:
        responder = Responder(
            DictStore() if store is None else store,  # type: ignore[arg-type]
            ClassicRenderer(),
            self.clock,
        )
        return WhoFactory(
            responder, self.clock, Limits(rate=Rate.parse(rate), **limits), observer=self.observer
        )

    def test_pipelinedPastTheBudget(self) -> None:
        """
        Of requests pipelined in one read, those within the budget are
        answered, the others refused, each in its place; the connection
        stays open.
        """
        c = Connection(self.factory("3/60"))
        c.send(b"WHO yoen\nPING\nWHO nobody\nWHO yoen\nPING\n")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"] + PONG + NOT_FOUND + RATE_LIMITED * 2)
        self.assertFalse(c.transport.disconnecting)

    def test_orderKeptBehindLookups(self) -> None:
        """
        A refusal, known at once, waits behind the replies of earlier
        requests still being looked up; it makes no lookup.
        """
        c = Connection(self.factory("2/60", self.store))
        c.send(b"WHO yoen\nWHO esteban\nWHO mohamed\nPING\n")
        self.assertEqual([login for login, _ in self.store.pending], ["yoen", "esteban"])
        self.assertEqual(c.received(), b"")
        self.store.answer(1, Avatar("esteban", "Garcia Marquez", "Estebán"))
        self.store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(
            c.received(), TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"] + RATE_LIMITED * 2
        )

    def test_oneRequestPerRead(self) -> None:
        """
        Requests sent one per read are counted the same; the budget comes
        back with time.
        """
        c = Connection(self.factory("2/10"))
        replies = []
        for _ in range(3):
            c.send(b"PING\n")
            replies.append(c.received())
        self.assertEqual(replies, [PONG, PONG, RATE_LIMITED])
        self.clock.advance(4.9)
        c.send(b"PING\n")
        self.assertEqual(c.received(), RATE_LIMITED)
        self.clock.advance(0.1)
        c.send(b"PING\n")
        self.assertEqual(c.received(), PONG)

    def test_sharedByTheConnectionsOfAClient(self) -> None:
        """
        Connections from one address share its budget; another address
        has its own.
        """
        factory = self.factory("2/60")
        first, second = Connection(factory), Connection(factory)
        other = Connection(factory, IPv4Address("TCP", "192.0.2.200", 1))
        first.send(b"PING\n")
        second.send(b"PING\nPING\n")
        other.send(b"PING\nPING\n")
        self.assertEqual((first.received(), second.received()), (PONG, PONG + RATE_LIMITED))
        self.assertEqual(other.received(), PONG * 2)

    def test_quitTakesNoToken(self) -> None:
        """
        C{QUIT} is answered past the budget, and within it takes nothing
        from it.
        """
        factory = self.factory("2/60")
        first = Connection(factory)
        first.send(b"PING\nQUIT\n")
        self.assertEqual(first.received(), PONG + b"OK bye\r\n")
        first.lose()
        second = Connection(factory)
        second.send(b"PING\nPING\nQUIT\n")
        self.assertEqual(second.received(), PONG + RATE_LIMITED + b"OK bye\r\n")
        third = Connection(factory)
        third.send(b"quit\n")
        self.assertEqual(third.received(), b"OK bye\r\n")

    def test_quitWithAnArgumentCounts(self) -> None:
        """
        C{QUIT x}, which does not close, is a request like any other.
        """
        c = Connection(self.factory("1/60"))
        c.send(b"PING\nQUIT x\n")
        self.assertEqual(c.received(), PONG + RATE_LIMITED)

    def test_lastLineWithoutEnding(self) -> None:
        """
        A last request cut short by the end of the client's input counts
        too.
        """
        c = Connection(self.factory("1/60"))
        c.send(b"PING\nPING")
        c.protocol.readConnectionLost()
        self.assertEqual(c.received(), PONG + RATE_LIMITED)

    def test_sharesOfTurns(self) -> None:
        """
        Requests of one read answered over several turns of the reactor
        take their tokens as they are answered, and no more.
        """
        c = Connection(self.factory("5/60", linesPerTurn=2, spareLinesPerTurn=0))
        c.send(b"PING\n" * 9)
        self.assertEqual(c.received(), PONG * 5 + RATE_LIMITED * 4)

    def test_requestsHeldBackAreNotChargedTwice(self) -> None:
        """
        Requests read but held back while too many replies are owed take
        their token when they are answered, not before.
        """
        c = Connection(self.factory("3/60", self.store, maxPending=1))
        c.send(b"WHO a\nWHO b\nWHO c\n")
        self.assertEqual(len(self.store.pending), 2)
        while self.store.pending:
            self.store.answer(0, None)
        self.assertEqual(c.received(), NOT_FOUND * 3)

    def test_noTokensHeldBetweenReads(self) -> None:
        """
        A connection takes the tokens of each read as it comes, and holds
        none ahead: another connection of its client may use every token
        left.
        """
        factory = self.factory("32/60")
        first = Connection(factory)
        first.send(b"PING\n")
        first.send(b"PING\n")
        second = Connection(factory)
        second.send(b"PING\n" * 40)
        self.assertEqual(second.received(), PONG * 30 + RATE_LIMITED * 10)

    def test_linesLeftUnansweredGiveTheirTokensBack(self) -> None:
        """
        The tokens of lines a read held but did not answer (those after
        C{QUIT}), and C{QUIT}'s own, go back to the client's bucket.
        """
        factory = self.factory("10/60")
        first = Connection(factory)
        first.send(b"PING\nQUIT\nPING\nPING\n")
        self.assertEqual(first.received(), PONG + b"OK bye\r\n")
        second = Connection(factory)
        second.send(b"PING\n" * 10)
        self.assertEqual(second.received(), PONG * 9 + RATE_LIMITED)

    def test_unixClientsHaveNoBudget(self) -> None:
        """
        A UNIX socket's client is never refused for its rate.
        """
        c = Connection(self.factory("1/60"), UNIXAddress(None))  # type: ignore[arg-type]
        c.send(b"PING\n" * 10)
        self.assertEqual(c.received(), PONG * 10)

    def test_countedAndObserved(self) -> None:
        """
        A refusal is counted under its command with the result
        C{rate-limit} (C{STATS} C{requests.rate-limit}) and told to the
        observer (the access log).
        """
        factory = self.factory("1/60")
        c = Connection(factory)
        c.send(b"PING\nWHO yoen\nBOGUS\n")
        c.received()
        self.assertEqual(
            factory.counters.requestCounts(),
            {("PING", "ok"): 1, ("WHO", "rate-limit"): 1, ("-", "rate-limit"): 1},
        )
        self.assertEqual(factory.counters.requestsByResult()["rate-limit"], 2)
        self.assertEqual(
            self.observer.seen,
            [("PING", "ok", b"PING"), ("WHO", "rate-limit", b"WHO yoen"), ("-", "rate-limit", b"BOGUS")],
        )
