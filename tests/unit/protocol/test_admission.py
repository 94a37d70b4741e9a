"""
L{CappedFactory}: at most C{limit} connections served at once; the others
wait, in the listen queue or unread.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from avatard.protocol.admission import CappedFactory

PEER = IPv4Address("TCP", "192.0.2.1", 40000)


class Recorder(Protocol):
    """
    Records what happens to it.
    """

    def __init__(self) -> None:
        self.events: list[str] = []

    def connectionMade(self) -> None:
        self.events.append("made")

    def dataReceived(self, data: bytes) -> None:
        self.events.append(data.decode())
        assert self.transport is not None
        self.transport.write(b"echo " + data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.events.append("lost")


@implementer(IPushProducer)
class FakePort:
    """
    A listening port as a producer: accepting or not.
    """

    accepting = True

    def pauseProducing(self) -> None:
        self.accepting = False

    def resumeProducing(self) -> None:
        self.accepting = True

    def stopProducing(self) -> None:
        pass


class CappedFactoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.protocols: list[Recorder] = []

        def build() -> Recorder:
            protocol = Recorder()
            self.protocols.append(protocol)
            return protocol

        self.factory = CappedFactory(Factory.forProtocol(build), 2)
        self.port = FakePort()
        self.factory.listening(self.port)

    def connect(self) -> tuple[Protocol, StringTransport]:
        protocol = self.factory.buildProtocol(PEER)
        assert protocol is not None
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_servedUpToTheCapThenTheyWait(self) -> None:
        """
        Connections up to the cap are served at once; the port stops
        accepting once it is reached, and a connection accepted beyond it
        is not read, nor connected to its protocol.
        """
        _, t1 = self.connect()
        self.assertTrue(self.port.accepting)
        _, t2 = self.connect()
        self.assertFalse(self.port.accepting)
        _, t3 = self.connect()
        self.assertEqual([p.events for p in self.protocols], [["made"], ["made"], []])
        self.assertEqual(
            (t1.producerState, t2.producerState, t3.producerState), ("producing",) * 2 + ("paused",)
        )

    def test_aClosedConnectionLetsTheOldestWaitingOneIn(self) -> None:
        """
        When a served connection closes, the oldest waiting one is served;
        the port accepts again once fewer than the cap are served.
        """
        first, _ = self.connect()
        second, _ = self.connect()
        third, t3 = self.connect()
        self.connect()
        first.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.protocols[2].events, ["made"])
        self.assertEqual(self.protocols[3].events, [])
        self.assertEqual(t3.producerState, "producing")
        self.assertFalse(self.port.accepting)
        third.dataReceived(b"hello")
        self.assertEqual(t3.value(), b"echo hello")
        second.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.protocols[3].events, ["made"])
        self.assertFalse(self.port.accepting)
        third.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(self.port.accepting)
        self.assertEqual(self.protocols[0].events, ["made", "lost"])

    def test_aWaitingConnectionThatClosesIsForgotten(self) -> None:
        """
        A connection that closes while it waits leaves the queue; its
        protocol, never connected, is not told, nor let in when a served
        connection closes: the port accepts again instead.
        """
        first, _ = self.connect()
        self.connect()
        third, _ = self.connect()
        third.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.protocols[2].events, [])
        self.assertFalse(self.port.accepting)
        first.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.protocols[2].events, [])
        self.assertTrue(self.port.accepting)

    def test_portThatListensWhenFull(self) -> None:
        """
        A port given once the cap is reached stops accepting at once.
        """
        factory = CappedFactory(Factory.forProtocol(Recorder), 1)
        protocol = factory.buildProtocol(PEER)
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        port = FakePort()
        factory.listening(port)
        self.assertFalse(port.accepting)

    def test_portThatIsNotAProducer(self) -> None:
        """
        A port that cannot stop accepting is left alone: the cap holds by
        leaving connections unread.
        """
        factory = CappedFactory(Factory.forProtocol(Recorder), 1)
        factory.listening(object())
        factory.buildProtocol(PEER).makeConnection(StringTransport())  # type: ignore[union-attr]
        t2 = StringTransport()
        factory.buildProtocol(PEER).makeConnection(t2)  # type: ignore[union-attr]
        self.assertEqual(t2.producerState, "paused")

    def test_transportCallsReachTheTransport(self) -> None:
        """
        The wrapped protocol's calls on its transport reach the real one.
        """
        _, transport = self.connect()
        assert self.protocols[0].transport is not None
        self.assertEqual(self.protocols[0].transport.getPeer(), PEER)
        self.protocols[0].transport.loseConnection()
        self.assertTrue(transport.disconnecting)
