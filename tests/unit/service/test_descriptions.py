"""
L{avatard.service.descriptions}: endpoint descriptions as the daemon reads
them.
"""

from __future__ import annotations

import os

from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from avatard.counters import Counters
from avatard.protocol.proxy import ProxyHeaderFactory, ProxyHeaders
from avatard.protocol.tls import HalfCloseableTLSProtocol
from avatard.service.descriptions import (
    DEFAULT_BACKLOG,
    endpointArguments,
    listenOn,
    tlsEndpoint,
    withBacklog,
)
from tests.helpers import selfSignedCertificate


class BacklogTests(SynchronousTestCase):
    """
    L{withBacklog}: a deep listen queue unless the operator sets one.
    """

    def test_addedWhereMissing(self) -> None:
        """
        TCP, TCP6, TLS and UNIX descriptions without C{backlog=} get the
        default.
        """
        for description in ("tcp:8787:interface=127.0.0.1", "tcp6:1", "ssl:443:privateKey=k", "unix:/s"):
            self.assertEqual(withBacklog(description), f"{description}:backlog={DEFAULT_BACKLOG}")

    def test_operatorsBacklogIsKept(self) -> None:
        """
        A C{backlog=} given is kept, and endpoints without a backlog (a socket
        handed over by systemd) are left alone.
        """
        for description in ("tcp:1:backlog=7", "systemd:domain=INET:index=0"):
            self.assertEqual(withBacklog(description), description)


class TLSEndpointTests(SynchronousTestCase):
    """
    L{tlsEndpoint}: which descriptions need Twisted's TLS support.
    """

    def test_tlsEndpointReadsDescriptionsAsTwistedDoes(self) -> None:
        """
        L{tlsEndpoint} finds the endpoint's type among the positional
        arguments, unescaped, skipping C{key=value} ones and wrappers.
        """
        self.assertEqual(endpointArguments(r"tcp6:8787:interface=\:\:1"), ["tcp6", "8787"])
        self.assertEqual(endpointArguments(r"unix:a\=b:mode=660"), ["unix", "a=b"])
        self.assertEqual(tlsEndpoint("haproxy:port=1:ssl:443"), "ssl")
        self.assertEqual(tlsEndpoint("TLS:/certificates"), "tls")
        self.assertIsNone(tlsEndpoint("tcp:443:interface=ssl"))
        self.assertIsNone(tlsEndpoint(r"unix:ssl\:x"))
        self.assertIsNone(tlsEndpoint("haproxy"))


class ProxyHeaderTests(SynchronousTestCase):
    """
    L{listenOn} with C{haproxy:} descriptions.
    """

    def listen(self, description: str, headers: ProxyHeaders | None) -> IProtocolFactory:
        reactor = MemoryReactorClock()
        listenOn(reactor, "--port", description, True, headers).listen(Factory.forProtocol(Protocol))
        [(_, factory, backlog, _)] = reactor.tcpServers
        if headers is not None:
            self.assertEqual(backlog, DEFAULT_BACKLOG)
        return factory

    def test_headerUnderTLS(self) -> None:
        """
        With the daemon's L{ProxyHeaders}, a C{haproxy:ssl:} port reads the
        header first, then the TLS that answers after a client's close.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        key, certificate = selfSignedCertificate(directory)
        headers = ProxyHeaders(Clock(), Counters(), 60.0)
        factory = self.listen(f"haproxy:ssl:0:privateKey={key}:certKey={certificate}", headers)
        assert isinstance(factory, ProxyHeaderFactory)
        self.assertIs(factory.headers, headers)
        tls = factory.wrappedFactory
        assert isinstance(tls, TLSMemoryBIOFactory)
        self.assertIs(tls.protocol, HalfCloseableTLSProtocol)

    def test_withoutProxyHeadersTwistedsOwn(self) -> None:
        """
        Without L{ProxyHeaders} (the metrics endpoint), a C{haproxy:}
        description is Twisted's.
        """
        self.assertNotIsInstance(self.listen("haproxy:tcp:0", None), ProxyHeaderFactory)
        headers = ProxyHeaders(Clock(), Counters(), 60.0)
        self.assertIsInstance(self.listen("haproxy:tcp:0", headers), ProxyHeaderFactory)
        self.assertNotIsInstance(self.listen("tcp:0", headers), ProxyHeaderFactory)

    def test_unusable(self) -> None:
        """
        A C{haproxy:} description whose endpoint cannot be used is refused
        in one line naming it whole.
        """
        headers = ProxyHeaders(Clock(), Counters(), 60.0)
        with self.assertRaises(SystemExit) as raised:
            listenOn(MemoryReactorClock(), "--port", "haproxy:carrier-pigeon:1", True, headers)
        self.assertIn("avatard: --port 'haproxy:carrier-pigeon:1' cannot be used", str(raised.exception.code))
