"""
L{WhoFactory}: the connection limits it enforces, and how its connections
end at shutdown.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import PEER, TUTORIAL_REPLIES, Connection, ControlledStore, DictStore, connect

BUSY = b"ERR busy too many connections, retry later\r\n"
PONG = b"OK pong\r\n"


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
        clock = c.clock
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
        clock = first.clock
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


class ConnectionLimitTests(SynchronousTestCase):
    """
    C{--max-connections} and C{--max-per-ip}.
    """

    def setUp(self) -> None:
        self.clock = Clock()

    def factory(self, limits: Limits) -> WhoFactory:
        return WhoFactory(Responder(DictStore(), ClassicRenderer(), self.clock), self.clock, limits)

    def refused(self, factory: WhoFactory, host: str = "192.0.2.9") -> bytes:
        """
        @return: what a client from C{host} that the factory refuses gets
            before the server closes.
        """
        protocol = factory.buildProtocol(IPv4Address("TCP", host, 1234))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertTrue(transport.disconnecting)
        data: bytes = transport.value()
        return data

    def ping(self, factory: WhoFactory, peer: IAddress) -> bytes:
        """
        Connect a client from C{peer} that sends C{PING}, and leave it
        connected.

        @return: what it got.
        """
        protocol = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        protocol.dataReceived(b"PING\n")
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
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual([e["log_namespace"] for e in warnings], ["avatard.protocol.WhoFactory"])
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
        self.assertEqual(self.ping(factory, IPv4Address("TCP", "198.51.100.8", 1)), PONG)
        a.lose()
        self.assertEqual(self.ping(factory, here), PONG)
        with capturedLogs():
            self.assertEqual(self.refused(factory, "198.51.100.7"), BUSY)

    def test_perAddressLimitOffByDefault(self) -> None:
        """
        By default any number of connections may come from one address
        (behind a load balancer, all do).
        """
        factory = self.factory(Limits())
        self.assertEqual({self.ping(factory, PEER) for _ in range(50)}, {PONG})

    def test_unixClientsCountOnlyGlobally(self) -> None:
        """
        Clients on a UNIX socket have no address to count per address: a
        limit per address refuses none of them.
        """
        factory = self.factory(Limits(maxPerAddress=1))
        self.assertEqual([self.ping(factory, UNIXAddress(None)) for _ in range(3)], [PONG] * 3)
