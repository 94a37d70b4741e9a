"""
L{avatard.protocol.listening}: reactors that listen their own way.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from avatard.protocol.listening import ListeningReactor


class _Recording(ListeningReactor):
    """
    Records what it is asked to listen with, then listens as the reactor.
    """

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor)
        self.factories: list[IProtocolFactory] = []

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        self.factories.append(factory)
        listening: IListeningPort = self._reactor.listenTCP(port, factory, backlog, interface)
        return listening


class ListeningReactorTests(SynchronousTestCase):
    def test_isTheReactorButForListening(self) -> None:
        """
        It provides the reactor's interfaces and gives its attributes.
        """
        reactor = MemoryReactorClock()
        listening = ListeningReactor(reactor)
        self.assertTrue(IReactorTCP.providedBy(listening))
        self.assertTrue(IReactorTime.providedBy(listening))
        self.assertEqual(listening.seconds(), reactor.seconds())
        listening.listenTCP(8787, Factory.forProtocol(Protocol))
        self.assertEqual(reactor.tcpServers[0][0], 8787)

    def test_listenSSLGoesThroughListenTCP(self) -> None:
        """
        C{listenSSL} listens with the subclass's C{listenTCP}, given the
        factory under TLS, on the port, backlog and interface asked for.
        """
        from twisted.internet.ssl import CertificateOptions

        reactor = MemoryReactorClock()
        recording = _Recording(reactor)
        factory = Factory.forProtocol(Protocol)
        recording.listenSSL(8788, factory, CertificateOptions(), backlog=7, interface="::1")
        [tlsFactory] = recording.factories
        self.assertIsInstance(tlsFactory, TLSMemoryBIOFactory)
        assert isinstance(tlsFactory, TLSMemoryBIOFactory)
        self.assertIs(tlsFactory.wrappedFactory, factory)
        port, listened, backlog, interface = reactor.tcpServers[0]
        self.assertEqual((port, listened, backlog, interface), (8788, tlsFactory, 7, "::1"))
        self.assertEqual(reactor.sslServers, [])
