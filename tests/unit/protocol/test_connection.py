"""
The WHO line protocol, driven through StringTransport: no sockets.
"""

from __future__ import annotations

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore
from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, Connection, ControlledStore, DictStore, connect


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

    def test_unknownLoginIsNotFoundAndConnectionStaysOpen(self) -> None:
        """
        An unknown login is answered C{ERR not-found}; the connection goes
        on serving.
        """
        c = connect()
        c.send(b"WHO nobody\nWHO yoen\n")
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n" + TUTORIAL_REPLIES["yoen"])
        self.assertFalse(c.closing)

    def test_blanksAroundWordsAreIgnored(self) -> None:
        """
        Extra spaces or tabs around and between the words do not matter.
        """
        c = connect()
        c.send(b"  WHO \t yoen  \r\n")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

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

    def test_thousandsOfPipelinedRequestsInOneWrite(self) -> None:
        """
        Five thousand requests in a single write get five thousand replies,
        in order.
        """
        c = connect()
        logins = [("yoen", "esteban", "mohamed", "nobody")[i % 4] for i in range(5000)]
        c.send(b"".join(b"WHO " + login.encode() + b"\n" for login in logins))
        expected = [TUTORIAL_REPLIES.get(login, b"ERR not-found no such login\r\n") for login in logins]
        self.assertEqual(c.received(), b"".join(expected))

    def test_requestSplitAcrossWrites(self) -> None:
        """
        A request that arrives in pieces is answered once it is complete.
        """
        c = connect()
        for piece in (b"WH", b"O yo", b"en\r", b"\n"):
            self.assertEqual(c.received(), b"")
            c.send(piece)
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

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

    def test_emptyReadIsNoRequest(self) -> None:
        """
        A read of nothing (as when reading resumes) is not an empty line:
        it gets no reply, alone or after a whole request.
        """
        c = connect()
        c.send(b"")
        self.assertEqual(c.received(), b"")
        c.send(b"WHO yoen\n")
        c.send(b"")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

    def test_oneWholeRequestPerRead(self) -> None:
        """
        Reads of exactly one request each, the usual case, are answered one
        by one, an empty line and a CRLF line included.
        """
        c = connect()
        for line in (b"WHO yoen\n", b"\n", b"PING\r\n", b"WHO nobody\n"):
            c.send(line)
        self.assertEqual(
            c.received(),
            TUTORIAL_REPLIES["yoen"]
            + b"ERR bad-request empty request, try HELP\r\n"
            + b"OK pong\r\n"
            + b"ERR not-found no such login\r\n",
        )

    def test_replyAfterConnectionLostIsDropped(self) -> None:
        """
        A lookup that completes after the client has gone is dropped
        quietly.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\n")
        c.lose()
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(c.received(), b"")
        self.assertEqual(c.factory.connections, set())


class CommandTests(SynchronousTestCase):
    """
    C{PING}, C{HELP}, C{QUIT}.
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
        self.assertEqual(c.received(), b"OK commands: WHO <login>, PING, STATS, HELP, QUIT\r\n")

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


class LineLimitTests(SynchronousTestCase):
    """
    The request line length limit.
    """

    def test_lineAtTheLimitIsServed(self) -> None:
        """
        A request of exactly the limit, CRLF not counted, is served.
        """
        c = connect(maxLine=20)
        request = b"WHO " + b"y" * 16
        c.send(request + b"\r\n")
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n")

    def test_longerLineIsRefusedAndClosed(self) -> None:
        """
        A longer line is answered C{ERR too-long} and the connection closed.
        """
        c = connect(maxLine=20)
        c.send(b"WHO " + b"y" * 17 + b"\n")
        self.assertEqual(c.received(), b"ERR too-long request line too long, closing\r\n")
        self.assertTrue(c.closing)

    def test_unterminatedFloodIsNotBuffered(self) -> None:
        """
        Bytes without a line ending beyond the limit are refused at once and
        not kept; what follows is ignored.
        """
        c = connect(maxLine=20)
        c.send(b"x" * 100)
        self.assertEqual(c.received(), b"ERR too-long request line too long, closing\r\n")
        c.send(b"y" * 100000 + b"\nWHO yoen\n")
        self.assertEqual(c.received(), b"")
        self.assertEqual(c.protocol.clearLineBuffer(), b"")

    def test_tooLongAfterPendingRepliesComesLast(self) -> None:
        """
        C{ERR too-long} comes after the replies owed to earlier requests.
        """
        store = ControlledStore()
        c = connect(store, maxLine=20)
        c.send(b"WHO yoen\n" + b"z" * 50)
        self.assertEqual(c.received(), b"")
        store.answer(0, None)
        self.assertEqual(
            c.received(),
            b"ERR not-found no such login\r\nERR too-long request line too long, closing\r\n",
        )
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


class DrainTests(SynchronousTestCase):
    """
    L{WhoFactory.drain}: how connections end at shutdown.
    """

    def test_idleConnectionsCloseAtOnce(self) -> None:
        """
        Connections owing nothing close at once; the drain completes when
        they are gone.
        """
        c = connect()
        d = c.factory.drain(10)
        self.assertTrue(c.closing)
        self.assertNoResult(d)
        c.lose()
        self.assertIsNone(self.successResultOf(d))

    def test_pendingRepliesAreWrittenBeforeClosing(self) -> None:
        """
        A connection with a lookup in flight answers it, then closes; it
        reads no new request meanwhile.
        """
        store = ControlledStore()
        c = connect(store)
        c.send(b"WHO yoen\n")
        d = c.factory.drain(10)
        self.assertFalse(c.closing)
        c.send(b"WHO esteban\n")
        self.assertEqual(len(store.pending), 1)
        store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.closing)
        c.lose()
        self.successResultOf(d)

    def test_connectionsStillOpenAtTheDeadlineAreDropped(self) -> None:
        """
        Past the timeout, connections still open are aborted and the drain
        completes.
        """
        store = ControlledStore()
        c = connect(store)
        clock = c.factory.clock
        assert isinstance(clock, Clock)
        c.send(b"WHO yoen\n")
        d = c.factory.drain(2)
        clock.advance(1.9)
        self.assertNoResult(d)
        with capturedLogs() as events:
            clock.advance(0.2)
        self.successResultOf(d)
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual([e["count"] for e in events], [1])

    def test_requestsUnansweredAtTheDeadlineAreCounted(self) -> None:
        """
        The requests read but left unanswered by the connections dropped at
        the deadline are counted, and named in the warning: those waiting
        for a lookup, and those answered behind them but not written;
        neither a request answered and written, nor the reply to a line too
        long.
        """
        store = ControlledStore()
        first = connect(store, maxLine=100)
        second = Connection(first.factory)
        clock = first.factory.clock
        assert isinstance(clock, Clock)
        first.send(b"PING\nWHO yoen\nPING\nWHO esteban\n" + b"x" * 200 + b"\n")
        second.send(b"WHO mohamed\n")
        self.assertEqual(first.received(), b"OK pong\r\n")
        d = first.factory.drain(2)
        with capturedLogs() as events:
            clock.advance(2)
        self.successResultOf(d)
        self.assertEqual(first.factory.counters.requestsDropped, 4)
        self.assertEqual([e["unanswered"] for e in events], [4])

    def test_drainWithNoConnections(self) -> None:
        """
        With no connection open, the drain is done at once.
        """
        clock = Clock()
        factory = WhoFactory(Responder(DictStore(), ClassicRenderer(), clock), clock)
        self.successResultOf(factory.drain(1))


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
