"""
Limits, flow control and database faults, on fake clocks and transports.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.interfaces import IPullProducer, IPushProducer, ISSLTransport, ITCPTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides, implementer
from zope.interface.verify import verifyObject

from avatard.model import Avatar
from avatard.protocol.connection import UNSENT_LIMIT
from avatard.protocol.factory import BusyProtocol, WhoFactory
from avatard.protocol.limits import Limits
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, Connection, ControlledStore, DictStore, connect

BUSY = b"ERR busy too many connections, retry later\r\n"
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"


def clockOf(c: Connection) -> Clock:
    clock = c.factory.clock
    assert isinstance(clock, Clock)
    return clock


def producerOf(c: Connection) -> IPushProducer:
    producer = c.transport.producer
    assert producer is not None
    return producer  # type: ignore[no-any-return]


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
        clockOf(c).advance(59.9)
        self.assertFalse(c.closing)
        clockOf(c).advance(0.2)
        self.assertEqual(c.received(), b"ERR timeout idle for too long, closing\r\n")
        self.assertTrue(c.closing)

    def test_anyDataRestartsTheTimer(self) -> None:
        """
        Each chunk received, even part of a line, restarts the timer: the
        timeout comes the idle timeout after the last one.
        """
        c = connect(limits=Limits(idleTimeout=10))
        for piece in (b"WH", b"O ", b"yoen", b"\n"):
            clockOf(c).advance(9)
            c.send(piece)
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])
        clockOf(c).advance(9)
        self.assertFalse(c.closing)
        clockOf(c).advance(1)
        self.assertEqual(c.received(), b"ERR timeout idle for too long, closing\r\n")

    def test_connectionOwedRepliesIsNotIdle(self) -> None:
        """
        While a reply is still owed the connection is not timed out; the
        timer runs again once it is written.
        """
        store = ControlledStore()
        c = connect(store, limits=Limits(idleTimeout=2), queryTimeout=100)
        c.send(b"WHO yoen\n")
        clockOf(c).advance(5)
        self.assertFalse(c.closing)
        store.answer(0, None)
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n")
        clockOf(c).advance(2.1)
        self.assertTrue(c.closing)

    def test_noTimerLeftAfterClose(self) -> None:
        """
        A closed connection leaves no timer behind.
        """
        c = connect()
        c.lose()
        self.assertEqual(clockOf(c).getDelayedCalls(), [])


class ConnectionLimitTests(SynchronousTestCase):
    """
    C{--max-connections} and C{--max-per-ip}.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def factory(self, limits: Limits) -> WhoFactory:
        return WhoFactory(Responder(DictStore(), ClassicRenderer(), self.clock), self.clock, limits)

    def refused(self, factory: WhoFactory, host: str = "192.0.2.9") -> bytes:
        protocol = factory.buildProtocol(IPv4Address("TCP", host, 1234))
        self.assertIsInstance(protocol, BusyProtocol)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        data: bytes = transport.value()
        return data

    def test_overTheLimitIsBusyAndOthersUnaffected(self) -> None:
        """
        A connection over C{maxConnections} gets C{ERR busy} and is closed
        at once; open ones go on; a slot frees up when a client leaves.
        """
        factory = self.factory(Limits(maxConnections=2))
        first, second = Connection(factory), Connection(factory)
        with capturedLogs() as events:
            self.assertEqual(self.refused(factory), BUSY)
            self.assertEqual(self.refused(factory), BUSY)
        self.assertEqual(len([e for e in events if e["log_level"] is LogLevel.warn]), 1)
        second.send(b"PING\n")
        self.assertEqual(second.received(), b"OK pong\r\n")
        with capturedLogs() as events:
            first.lose()
        self.assertEqual([e["count"] for e in events], [2])
        third = Connection(factory)
        third.send(b"WHO yoen\n")
        self.assertEqual(third.received(), TUTORIAL_REPLIES["yoen"])

    def test_perAddressLimit(self) -> None:
        """
        C{maxPerAddress} limits one IP address; other addresses still get
        in; its slots free up as its connections close.
        """
        factory = self.factory(Limits(maxPerAddress=2))
        here = IPv4Address("TCP", "198.51.100.7", 1)
        a, _ = Connection(factory, here), Connection(factory, here)
        with capturedLogs():
            self.assertEqual(self.refused(factory, "198.51.100.7"), BUSY)
        Connection(factory, IPv4Address("TCP", "198.51.100.8", 1))
        self.assertEqual(factory.perAddress, {"198.51.100.7": 2, "198.51.100.8": 1})
        a.lose()
        Connection(factory, here)
        self.assertEqual(factory.perAddress["198.51.100.7"], 2)

    def test_perAddressLimitOffByDefault(self) -> None:
        """
        By default any number of connections may come from one address
        (behind a load balancer, all do).
        """
        factory = self.factory(Limits())
        for _ in range(50):
            Connection(factory)
        self.assertEqual(len(factory.connections), 50)

    def test_unixClientsCountOnlyGlobally(self) -> None:
        """
        Clients on a UNIX socket have no address to count per address.
        """
        factory = self.factory(Limits(maxPerAddress=1))
        protocols = [factory.buildProtocol(UNIXAddress(None)) for _ in range(3)]
        for protocol in protocols:
            protocol.makeConnection(StringTransport())
        self.assertEqual(len(factory.connections), 3)
        self.assertEqual(factory.perAddress, {})


class BackpressureTests(SynchronousTestCase):
    """
    A client that sends faster than it reads does not make the server buffer
    without bound.
    """

    def test_tooManyPendingRepliesPausesReading(self) -> None:
        """
        Past C{maxPending} replies owed, the server stops reading (and
        stops starting lookups); it resumes at half, and every request is
        answered in order in the end, whatever order the lookups complete
        in.
        """
        store = ControlledStore()

        def answer(index: int) -> None:
            store.answer(index, Avatar(store.pending[index][0], "User", "Some"))

        c = connect(store, limits=Limits(maxPending=10), queryTimeout=100)
        c.send(b"".join(b"WHO u%d\n" % i for i in range(50)))
        self.assertEqual(len(store.pending), 11)
        self.assertEqual(c.transport.producerState, "paused")
        for _ in range(5):
            answer(0)
        self.assertEqual(len(store.pending), 6)
        # At half, reading resumes: the buffered requests start six more
        # lookups, and reading pauses again.
        answer(0)
        self.assertEqual(len(store.pending), 11)
        self.assertEqual(c.transport.producerState, "paused")
        # The latest lookup first: replies still go out in request order.
        while store.pending:
            answer(-1)
        self.assertEqual(
            c.received(), b"".join(b"OK Mr 'Some User' is connected under 'u%d'\r\n" % i for i in range(50))
        )
        self.assertEqual(c.transport.producerState, "producing")

    def test_unsentRepliesPauseReading(self) -> None:
        """
        When more than 64 KiB of replies wait unsent in the transport, the
        server stops reading; once the transport reports everything sent,
        reading and answering resume.
        """
        # Every request of the read in one turn: only unsent bytes pause.
        c = connect(limits=Limits(linesPerTurn=10**9))
        self.assertFalse(c.transport.streaming)
        self.assertTrue(verifyObject(IPullProducer, c.transport.producer))
        requests = UNSENT_LIMIT // len(b"OK pong\r\n") + 1000
        c.send(b"PING\n" * requests)
        self.assertEqual(c.transport.producerState, "paused")
        unsent = len(c.transport.value())
        self.assertGreater(unsent, UNSENT_LIMIT)
        self.assertLessEqual(unsent, UNSENT_LIMIT + len(b"OK pong\r\n"))
        c.sent()
        self.assertEqual(c.transport.producerState, "producing")
        self.assertEqual(c.received(), b"OK pong\r\n" * requests)

    def test_sentRepliesDoNotAddUp(self) -> None:
        """
        Only replies not sent yet count: a client that reads what it is
        sent is never paused, however much it asks for in all.
        """
        c = connect()
        c.protocol.unsentLimit = 20
        for _ in range(10):
            c.send(b"PING\nPING\n")
            self.assertEqual(c.transport.producerState, "producing")
            self.assertEqual(c.received(), b"OK pong\r\n" * 2)

    def test_tlsTransportPausesReading(self) -> None:
        """
        A TLS transport, which would drive a pull producer with a loop of
        calls, gets a streaming one: when it says its buffer of unsent
        replies is full, the server stops reading; when it drains, reading
        and answering resume.
        """
        c = connect(tls=True)
        transport = c.transport
        producer = producerOf(c)
        self.assertTrue(transport.streaming)
        producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        c.send(b"WHO yoen\nWHO esteban\n")
        self.assertEqual(c.received(), b"")
        producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"])

    def test_tlsTransportIsNotPausedByCount(self) -> None:
        """
        On a TLS transport, which never says when all is sent, unsent bytes
        are not counted against the limit: only its producer pauses reading.
        """
        c = connect(tls=True, limits=Limits(linesPerTurn=10**9))
        transport = c.transport
        requests = UNSENT_LIMIT // len(b"OK pong\r\n") + 1000
        c.send(b"PING\n" * requests)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(c.received(), b"OK pong\r\n" * requests)

    def test_bothReasonsMustClear(self) -> None:
        """
        Reading resumes only when neither reason to pause remains.
        """
        store = ControlledStore()
        c = connect(store, limits=Limits(maxPending=1), queryTimeout=100)
        c.protocol.unsentLimit = 1
        c.send(b"WHO a\nWHO b\nWHO c\n")
        store.answer(0, None)
        store.answer(0, None)
        self.assertEqual(c.transport.producerState, "paused")
        self.assertEqual(len(store.pending), 0)
        c.sent()
        self.assertEqual(c.transport.producerState, "producing")
        self.assertEqual(len(store.pending), 1)

    def test_closingUnregistersTheProducer(self) -> None:
        """
        Closing unregisters the producer first, which would otherwise hold
        the close back.
        """
        c = connect()
        c.protocol.unsentLimit = 1
        c.send(b"PING\n")
        self.assertEqual(c.transport.producerState, "paused")
        c.protocol.finish()
        self.assertIsNone(c.transport.producer)
        self.assertTrue(c.closing)

    def test_endOfInputBehindAPause(self) -> None:
        """
        When the client ends its input while lines wait behind a pause,
        they are still answered, then the connection closes.
        """
        store = ControlledStore()
        c = connect(store, limits=Limits(maxPending=1), queryTimeout=100)
        c.send(b"WHO a\nWHO b\nWHO c\nPING")
        c.protocol.readConnectionLost()
        self.assertFalse(c.closing)
        while store.pending:
            store.answer(0, None)
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n" * 3 + b"OK pong\r\n")
        self.assertTrue(c.closing)


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
            clockOf(c).advance(3)
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
            clockOf(c).advance(1)
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
            clockOf(c).advance(1)
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
        clockOf(c).advance(1.9)
        self.assertFalse(transport.disconnecting)
        clockOf(c).advance(0.2)
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
        self.assertEqual(clockOf(c).getDelayedCalls(), [])


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
        clockOf(c).advance(10)
        self.assertFalse(c.closing)
        c.sent()
        clockOf(c).advance(2.1)
        self.assertTrue(c.closing)


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
        clock = clockOf(c)
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
