"""
L{Connections}: who may connect (C{--allow}), and the budgets of clients
(C{--rate-limit}), for every front-end.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from avatard.counters import Counters
from avatard.networks import Networks
from avatard.protocol.connections import BUSY, DENIALS_QUIET, DENIED, Connections, DeniedProtocol, peerHostOf
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.rates import Bucket, Rate
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import Connection, DictStore
from tests.unit.protocol.test_connection import HalfClosingTransport

DENIED_LINE = b"ERR denied not allowed from this address\r\n"
BUSY_LINE = b"ERR busy too many connections, retry later\r\n"
ALLOW = Networks.parse(["192.0.2.0/24", "2001:db8::/32"])


class RefusalTests(SynchronousTestCase):
    """
    L{Connections.refusal}: C{--allow}, before the limits.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.counters = Counters()

    def connections(self, **limits: object) -> Connections:
        return Connections(self.clock, Limits(allow=ALLOW, **limits), self.counters)  # type: ignore[arg-type]

    def test_allowedAndDenied(self) -> None:
        """
        Addresses inside the networks are admitted, others denied, and
        counted as denied, not as refused.
        """
        connections = self.connections()
        with capturedLogs():
            self.assertIsNone(connections.refusal("192.0.2.7"))
            self.assertIsNone(connections.refusal("2001:db8::1"))
            self.assertIs(connections.refusal("198.51.100.1"), DENIED)
            self.assertIs(connections.refusal("2001:db9::1"), DENIED)
        self.assertEqual((self.counters.connectionsDenied, self.counters.connectionsRefused), (2, 0))

    def test_everyoneByDefault(self) -> None:
        """
        Without C{--allow}, every address is admitted.
        """
        connections = Connections(self.clock, Limits(), self.counters)
        self.assertIsNone(connections.refusal("198.51.100.1"))
        self.assertIsNone(connections.refusal("2001:db9::1"))

    def test_mappedIPv4OnAnIPv6Listener(self) -> None:
        """
        An IPv4 client of a dual-stack IPv6 listener is judged as the IPv4
        address it is.
        """
        connections = self.connections()
        self.assertIsNone(connections.refusal(peerHostOf(IPv6Address("TCP", "::ffff:192.0.2.9", 1))))
        with capturedLogs():
            self.assertIs(
                connections.refusal(peerHostOf(IPv6Address("TCP", "::ffff:198.51.100.1", 1))), DENIED
            )

    def test_unixClientsAreAlwaysAdmitted(self) -> None:
        """
        A UNIX socket's client, governed by the socket's file permissions,
        is admitted whatever the allow-list.
        """
        connections = self.connections()
        self.assertIsNone(connections.refusal(peerHostOf(UNIXAddress(None))))
        self.assertEqual(self.counters.connectionsDenied, 0)

    def test_deniedBeforeBusy(self) -> None:
        """
        At the connection limit, a client from outside the list is still
        told it is denied, and one from inside that the server is busy.
        """
        connections = self.connections(maxConnections=0)
        with capturedLogs():
            self.assertIs(connections.refusal("198.51.100.1"), DENIED)
            self.assertIs(connections.refusal("192.0.2.1"), BUSY)
        self.assertEqual((self.counters.connectionsDenied, self.counters.connectionsRefused), (1, 1))

    def test_deniedOncePerEpisode(self) -> None:
        """
        Denials are reported once when they begin (naming the first
        address and the list), once when a connection is admitted again
        (with their count), and a new episode within L{DENIALS_QUIET}
        seconds of the last report is only counted.
        """
        connections = self.connections()
        with capturedLogs() as events:
            for _ in range(5):
                connections.refusal("198.51.100.1")
            connections.refusal("192.0.2.1")
            self.clock.advance(1)
            connections.refusal("198.51.100.2")
            connections.refusal("192.0.2.1")
        self.assertEqual(
            [(e["log_level"], e.get("host"), e.get("count")) for e in events],
            [(LogLevel.warn, "198.51.100.1", None), (LogLevel.info, None, 5)],
        )
        self.assertEqual(events[0]["allow"], "192.0.2.0/24, 2001:db8::/32")
        self.assertEqual(events[0]["log_namespace"], "avatard.protocol.WhoFactory")
        self.clock.advance(DENIALS_QUIET)
        with capturedLogs() as events:
            connections.refusal("198.51.100.3")
            connections.refusal("198.51.100.3")
            connections.refusal("192.0.2.1")
        self.assertEqual(
            [(e["log_level"], e.get("host"), e.get("count")) for e in events],
            [(LogLevel.warn, "198.51.100.3", None), (LogLevel.info, None, 3)],
        )
        self.assertEqual(self.counters.connectionsDenied, 8)


class BucketTests(SynchronousTestCase):
    """
    L{Connections.buckets}: one bucket per client key.
    """

    def setUp(self) -> None:
        self.connections = Connections(Clock(), Limits(rate=Rate(2, 10)), Counters())

    def bucket(self, peer: str) -> Bucket:
        assert self.connections.buckets is not None
        bucket = self.connections.buckets.of(peer)
        assert bucket is not None
        return bucket

    def test_noRateLimit(self) -> None:
        """
        Without C{--rate-limit}, there are no buckets.
        """
        self.assertIsNone(Connections(Clock(), Limits(), Counters()).buckets)

    def test_unixClientsHaveNone(self) -> None:
        """
        A client without an address (a UNIX socket's) has no bucket.
        """
        assert self.connections.buckets is not None
        self.assertIsNone(self.connections.buckets.of(None))

    def test_sharedByAClient(self) -> None:
        """
        The connections of one IPv4 address share a bucket; those of
        another address do not.
        """
        first, second, other = self.bucket("192.0.2.1"), self.bucket("192.0.2.1"), self.bucket("192.0.2.2")
        self.assertIs(first, second)
        self.assertIsNot(first, other)

    def test_ipv6ClientsPer64(self) -> None:
        """
        IPv6 clients share a bucket per /64, and an IPv4-mapped client
        shares that of its IPv4 address.
        """
        bucket = self.bucket
        self.assertIs(bucket("2001:db8:0:1::1"), bucket("2001:db8:0:1:ffff::2"))
        self.assertIsNot(bucket("2001:db8:0:1::1"), bucket("2001:db8:0:2::1"))
        self.assertIs(bucket("::ffff:192.0.2.1"), bucket("192.0.2.1"))


class DeniedConnectionTests(SynchronousTestCase):
    """
    What a denied client of the WHO protocol gets.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        responder = Responder(DictStore(), ClassicRenderer(), self.clock)
        self.factory = WhoFactory(responder, self.clock, Limits(allow=ALLOW, maxConnections=1))

    def refused(self, peer: IAddress) -> tuple[DeniedProtocol, HalfClosingTransport]:
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, DeniedProtocol)
        transport = HalfClosingTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_oneLineThenALingeringClose(self) -> None:
        """
        A denied client gets one line, and the server shuts down its
        sending side, reading (and discarding) what the client sends, so
        that the line is not destroyed by a reset; the connection closes
        after the linger time, or as soon as the client closes.
        """
        with capturedLogs():
            protocol, transport = self.refused(IPv4Address("TCP", "198.51.100.1", 1))
        self.assertEqual(transport.value(), DENIED_LINE)
        self.assertTrue(transport.writeClosed)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"WHO yoen\n")
        self.assertEqual(transport.value(), DENIED_LINE)
        self.clock.advance(2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lingerTimerGoesWithTheConnection(self) -> None:
        """
        A client that closes first leaves no timer behind.
        """
        with capturedLogs():
            protocol, _ = self.refused(IPv4Address("TCP", "198.51.100.1", 1))
        protocol.connectionLost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noLookupNorRequestCounted(self) -> None:
        """
        A denied connection is neither opened nor a request: only
        C{connections.denied} counts it.
        """
        with capturedLogs():
            protocol, _ = self.refused(IPv4Address("TCP", "198.51.100.1", 1))
        protocol.dataReceived(b"WHO yoen\n")
        counters = self.factory.counters
        self.assertEqual(
            (counters.connectionsDenied, counters.connectionsOpened, counters.requestCounts()), (1, 0, {})
        )

    def test_busyIsStillBusy(self) -> None:
        """
        An allowed client over the limit gets C{ERR busy}, as before.
        """
        Connection(self.factory, IPv4Address("TCP", "192.0.2.1", 1))
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.2", 1))
        transport = StringTransport()
        with capturedLogs():
            protocol.makeConnection(transport)
        self.assertEqual(transport.value(), BUSY_LINE)
