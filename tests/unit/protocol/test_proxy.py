"""
L{avatard.protocol.proxy}: connections with a PROXY header served as the
client the header names, only from senders believed; on memory
transports.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from avatard.counters import Counters
from avatard.interfaces import IAvatarStore
from avatard.networks import Networks
from avatard.protocol.connection import WhoProtocol
from avatard.protocol.connections import Connections
from avatard.protocol.factory import WhoFactory
from avatard.protocol.finger import FingerFactory
from avatard.protocol.limits import Limits
from avatard.protocol.proxy import (
    BELIEVED,
    ProxyHeaderFactory,
    ProxyHeaderProtocol,
    ProxyHeaders,
    listenWithProxyHeaders,
    proxiedDescription,
)
from avatard.protocol.tls import HalfCloseableTLSProtocol, listenWithHalfCloseableTLS
from avatard.request.observe import IRequestObserver
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import TUTORIAL_REPLIES, ControlledStore, DictStore, selfSignedCertificate
from tests.tlsclient import MemoryTLSClient
from tests.unit.protocol.test_proxyheader import V1_TCP4, V2_LOCAL, V2_TCP4, V2_TCP6
from tests.unit.protocol.test_tls import YOEN, tlsOptions

HAPROXY = IPv4Address("TCP", "127.0.0.1", 50000)
CLIENT = IPv4Address("TCP", "192.0.2.7", 40000)
TIMEOUT = 60.0


class RecordingFactory(Factory):
    """
    Builds plain protocols, recording the address each was built for and
    what each received.
    """

    def __init__(self) -> None:
        self.addresses: list[IAddress | None] = []
        self.received: list[bytes] = []
        self.refuse = False

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        self.addresses.append(addr)
        if self.refuse:
            return None
        protocol = Protocol()
        protocol.dataReceived = self.received.append  # type: ignore[method-assign, assignment]
        return protocol


class ProxyConnection:
    """
    One connection to a C{haproxy:} listener, on a StringTransport, from
    C{sender}.
    """

    def __init__(self, factory: ProxyHeaderFactory, sender: IAddress = HAPROXY) -> None:
        self.transport = StringTransport(peerAddress=sender)
        self.protocol = factory.buildProtocol(sender)
        if self.protocol is not None:
            self.protocol.makeConnection(self.transport)

    @property
    def wrapper(self) -> ProxyHeaderProtocol:
        assert self.protocol is not None
        return self.protocol

    def send(self, data: bytes) -> None:
        self.wrapper.dataReceived(data)

    def halfClose(self) -> None:
        """
        The client shuts down its sending side: as TCP does, adapt the
        protocol to L{IHalfCloseableProtocol}, and lose the connection if
        it does not.
        """
        halfCloseable = IHalfCloseableProtocol(self.wrapper, None)
        if halfCloseable is None:
            self.lose()
        else:
            halfCloseable.readConnectionLost()

    def lose(self) -> None:
        self.wrapper.connectionLost(Failure(ConnectionDone()))


class Setup:
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters = Counters()
        self.headers = ProxyHeaders(self.clock, self.counters, TIMEOUT)
        self.recording = RecordingFactory()

    def whoFactory(self, store: IAvatarStore | None = None, maxPerAddress: int = 0) -> WhoFactory:
        responder = Responder(DictStore() if store is None else store, ClassicRenderer(), self.clock)
        return WhoFactory(responder, self.clock, Limits(maxPerAddress=maxPerAddress), self.counters)


class HeaderTests(Setup, SynchronousTestCase):
    def test_realAddressToBuildProtocol(self) -> None:
        """
        The wrapped factory's C{buildProtocol} is called once the header
        is read, with the client's address, not at the connection.
        """
        c = ProxyConnection(ProxyHeaderFactory(self.recording, self.headers))
        self.assertEqual(self.recording.addresses, [])
        c.send(V1_TCP4[:20])
        self.assertEqual(self.recording.addresses, [])
        c.send(V1_TCP4[20:])
        self.assertEqual(self.recording.addresses, [CLIENT])

    def test_transportReportsTheClient(self) -> None:
        """
        The protocol's transport reports the client as its peer, the
        address it connected to as its host.
        """
        c = ProxyConnection(ProxyHeaderFactory(self.recording, self.headers))
        c.send(V2_TCP6)
        assert c.wrapper.wrappedProtocol is not None
        transport = c.wrapper.wrappedProtocol.transport  # type: ignore[attr-defined]
        self.assertEqual(transport.getPeer(), IPv6Address("TCP", "2001:db8::7", 40000))
        self.assertEqual(transport.getHost(), IPv6Address("TCP", "2001:db8::1", 8787))

    def test_dataAfterTheHeader(self) -> None:
        """
        What follows the header, in the same read or in later ones, is
        passed on, byte for byte.
        """
        for header in (V1_TCP4, V2_TCP4):
            recording = RecordingFactory()
            c = ProxyConnection(ProxyHeaderFactory(recording, self.headers))
            c.send(header + b"WHO yo")
            c.send(b"en\n")
            self.assertEqual(b"".join(recording.received), b"WHO yoen\n")

    def test_headerByteByByte(self) -> None:
        """
        A header that comes a byte at a time is read whole.
        """
        for header in (V1_TCP4, V2_TCP4):
            recording = RecordingFactory()
            c = ProxyConnection(ProxyHeaderFactory(recording, self.headers))
            for i in range(len(header)):
                c.send(header[i : i + 1])
            self.assertEqual(recording.addresses, [CLIENT])
            self.assertFalse(c.transport.disconnecting)

    def test_localAndUnknownAreTheSenders(self) -> None:
        """
        A health check's C{LOCAL} header, and C{PROXY UNKNOWN}, name no
        client: the connection is served as the sender's.
        """
        for header in (V2_LOCAL, b"PROXY UNKNOWN\r\n"):
            recording = RecordingFactory()
            c = ProxyConnection(ProxyHeaderFactory(recording, self.headers))
            c.send(header + b"PING\n")
            self.assertEqual(recording.addresses, [HAPROXY])
            self.assertEqual(recording.received, [b"PING\n"])

    def test_whoRepliesAndAccessAddress(self) -> None:
        """
        Through the wrapper, a WHO connection answers as on plain TCP and
        knows the client's address as its own.
        """
        c = ProxyConnection(ProxyHeaderFactory(self.whoFactory(), self.headers))
        c.send(V2_TCP4 + b"WHO yoen\n")
        self.assertEqual(c.transport.value(), TUTORIAL_REPLIES["yoen"])
        protocol = c.wrapper.wrappedProtocol
        assert isinstance(protocol, WhoProtocol)
        self.assertEqual(protocol.peerHost, "192.0.2.7")

    def test_maxPerIPCountsClaimedAddresses(self) -> None:
        """
        C{--max-per-ip} counts clients by the address their header claims,
        not by the proxy's.
        """
        factory = ProxyHeaderFactory(self.whoFactory(maxPerAddress=1), self.headers)
        first, second, other = ProxyConnection(factory), ProxyConnection(factory), ProxyConnection(factory)
        first.send(V1_TCP4)
        second.send(V1_TCP4)
        other.send(b"PROXY TCP4 192.0.2.8 198.51.100.1 40000 8787\r\n")
        self.assertEqual(first.transport.value(), b"")
        self.assertTrue(second.transport.value().startswith(b"ERR busy"))
        self.assertEqual(other.transport.value(), b"")
        self.assertFalse(other.transport.disconnecting)

    def test_wrappedFactoryRefuses(self) -> None:
        """
        A wrapped factory that builds no protocol has the connection
        closed.
        """
        self.recording.refuse = True
        c = ProxyConnection(ProxyHeaderFactory(self.recording, self.headers))
        c.send(V1_TCP4 + b"WHO yoen\n")
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(self.recording.received, [])

    def test_connectionLostReachesTheProtocol(self) -> None:
        """
        The end of the connection reaches the protocol served; before the
        header, there is none to tell.
        """
        lost: list[Failure] = []
        self.recording.buildProtocol = lambda addr: _Losing(lost)  # type: ignore[method-assign]
        c = ProxyConnection(ProxyHeaderFactory(self.recording, self.headers))
        c.send(V1_TCP4)
        c.lose()
        self.assertEqual(len(lost), 1)
        early = ProxyConnection(ProxyHeaderFactory(self.recording, self.headers))
        early.lose()
        self.assertEqual(len(lost), 1)
        self.assertEqual(len(self.headers.idle), 0)

    def test_listenerStopClosesThoseWaiting(self) -> None:
        """
        When its listener stops, a connection still waiting for its header
        is closed; one already served is left to its protocol.
        """
        factory = ProxyHeaderFactory(self.recording, self.headers)
        factory.doStart()
        waiting, served = ProxyConnection(factory), ProxyConnection(factory)
        waiting.send(V1_TCP4[:10])
        served.send(V1_TCP4)
        factory.doStop()
        self.assertTrue(waiting.transport.disconnecting)
        self.assertFalse(served.transport.disconnecting)
        waiting.send(V1_TCP4[10:])
        self.assertEqual(self.recording.addresses, [CLIENT])


class _Losing(Protocol):
    def __init__(self, lost: list[Failure]) -> None:
        self.lost = lost

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.append(reason)


class RefusalTests(Setup, SynchronousTestCase):
    def test_senderOutsideProxyFrom(self) -> None:
        """
        A connection from outside C{--proxy-from} is refused at once: no
        protocol (the listener closes it), nothing built, nothing sent.  It
        is counted, and reported once per episode.
        """
        self.headers = ProxyHeaders(self.clock, self.counters, TIMEOUT, Networks.parse(["10.0.0.0/8"]))
        factory = ProxyHeaderFactory(self.recording, self.headers)
        with capturedLogs() as events:
            self.assertIsNone(factory.buildProtocol(HAPROXY))
            self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 1)))
        self.assertEqual(self.recording.addresses, [])
        self.assertEqual(self.counters.proxyRefused, 2)
        warnings = [e for e in events if e["log_level"].name == "warn"]
        self.assertEqual(len(warnings), 1)
        self.assertIn(
            "127.0.0.1:50000, outside --proxy-from (10.0.0.0/8)",
            warnings[0]["log_format"].format(**warnings[0]),
        )
        self.assertIsNotNone(factory.buildProtocol(IPv4Address("TCP", "10.1.2.3", 1)))

    def test_defaultIsLoopback(self) -> None:
        """
        By default, headers are believed from loopback only, IPv4-mapped
        loopback included; a UNIX socket's client is always believed.
        """
        factory = ProxyHeaderFactory(self.recording, self.headers)
        for sender in (
            HAPROXY,
            IPv6Address("TCP", "::1", 1),
            IPv6Address("TCP", "::ffff:127.0.0.1", 1),
            UNIXAddress(None),
        ):
            self.assertIsNotNone(factory.buildProtocol(sender), sender)
        for sender in (IPv4Address("TCP", "192.0.2.1", 1), IPv6Address("TCP", "2001:db8::1", 1)):
            self.assertIsNone(factory.buildProtocol(sender), sender)

    def test_believedSendersRemembered(self) -> None:
        """
        Senders found in C{--proxy-from} are remembered, a bounded number
        of them; refused ones never are, and stay refused.
        """
        self.headers = ProxyHeaders(self.clock, self.counters, TIMEOUT, Networks.parse(["10.0.0.0/8"]))
        for n in range(BELIEVED * 3):
            self.assertTrue(self.headers.admits(IPv4Address("TCP", f"10.0.{n // 256}.{n % 256}", 1)))
            self.assertLessEqual(len(self.headers._believed), BELIEVED)
        for _ in range(2):
            self.assertFalse(self.headers.admits(IPv4Address("TCP", "192.0.2.1", 1)))
        self.assertNotIn("192.0.2.1", self.headers._believed)
        self.assertEqual(self.counters.proxyRefused, 2)

    def test_requestLineWithoutHeader(self) -> None:
        """
        A connection that starts with a request line, not a header, is
        closed without a reply, nothing built; counted, reported once.
        """
        factory = ProxyHeaderFactory(self.whoFactory(), self.headers)
        with capturedLogs() as events:
            for _ in range(3):
                c = ProxyConnection(factory)
                c.send(b"WHO yoen\n")
                self.assertTrue(c.transport.disconnecting)
                self.assertEqual(c.transport.value(), b"")
                c.send(b"WHO yoen\n")
                self.assertEqual(c.transport.value(), b"")
                self.assertIsNone(c.wrapper.wrappedProtocol)
        self.assertEqual(self.counters.proxyInvalid, 3)
        self.assertEqual(self.counters.connectionsOpened, 0)
        self.assertEqual(len([e for e in events if e["log_level"].name == "warn"]), 1)

    def test_episodeEndsWithAValidHeader(self) -> None:
        """
        A valid header after refusals ends their episode, in one line.
        """
        factory = ProxyHeaderFactory(self.recording, self.headers)
        ProxyConnection(factory).send(b"garbage")
        with capturedLogs() as events:
            ProxyConnection(factory).send(V1_TCP4)
        self.assertEqual(
            [e["log_format"].format(**e) for e in events],
            ["PROXY headers read again (1 connections without a header refused meanwhile)."],
        )

    def test_headerThatNeverCompletes(self) -> None:
        """
        A header still incomplete after the idle timeout has its connection
        closed, without a reply; a header complete in time stops the timer.
        """
        factory = ProxyHeaderFactory(self.recording, self.headers)
        slow = ProxyConnection(factory)
        slow.send(V1_TCP4[:10])
        prompt = ProxyConnection(factory)
        prompt.send(V1_TCP4)
        self.clock.advance(TIMEOUT - 1)
        self.assertFalse(slow.transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(slow.transport.disconnecting)
        self.assertEqual(slow.transport.value(), b"")
        self.assertFalse(prompt.transport.disconnecting)
        self.assertEqual(self.recording.addresses, [CLIENT])
        self.assertEqual(self.counters.proxyInvalid, 1)


class HalfCloseTests(Setup, SynchronousTestCase):
    def test_halfClosePassedOn(self) -> None:
        """
        A client that ends its input while its reply waits for a lookup
        (C{echo 'WHO yoen' | nc -N}) gets it, then the connection closes:
        the end of the input reaches the WHO protocol as a half-close.
        """
        store = ControlledStore()
        c = ProxyConnection(ProxyHeaderFactory(self.whoFactory(store), self.headers))
        c.send(V2_TCP4 + b"WHO yoen\n")
        c.halfClose()
        self.assertFalse(c.transport.disconnecting)
        store.answer(0, YOEN)
        self.assertEqual(c.transport.value(), TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.transport.disconnecting)

    def test_unterminatedLastLine(self) -> None:
        """
        A last line without its line ending, ended by the client's
        half-close, is answered.
        """
        c = ProxyConnection(ProxyHeaderFactory(self.whoFactory(), self.headers))
        c.send(V1_TCP4 + b"WHO yoen")
        c.halfClose()
        self.assertEqual(c.transport.value(), TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.transport.disconnecting)

    def test_fingerQueryEndedByHalfClose(self) -> None:
        """
        A finger query without its line ending, ended by the client's
        half-close, is answered, and logged under the header's client.
        """
        answered: list[str] = []

        @implementer(IRequestObserver)
        class Observer:
            def requestAnswered(
                self, peer: str, command: str, result: str, line: bytes, seconds: float
            ) -> None:
                answered.append(peer)

        connections = Connections(self.clock, Limits(), self.counters)
        finger = FingerFactory(
            lambda login: b"found " + login.encode() + b"\r\n", self.clock, connections, Observer()
        )
        c = ProxyConnection(ProxyHeaderFactory(finger, self.headers))
        c.send(V1_TCP4 + b"yoen")
        c.halfClose()
        self.assertEqual(c.transport.value(), b"found yoen\r\n")
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(answered, ["192.0.2.7:40000"])

    def test_beforeTheHeaderNoHalfClose(self) -> None:
        """
        Before its header, a connection does not take a half-close: the
        end of its input closes it.
        """
        c = ProxyConnection(ProxyHeaderFactory(self.whoFactory(), self.headers))
        c.send(V1_TCP4[:5])
        self.assertIsNone(IHalfCloseableProtocol(c.wrapper, None))

    def test_asTheProtocolDoes(self) -> None:
        """
        The wrapper takes a half-close exactly when the protocol it serves
        does: never for one that does not provide it.
        """
        c = ProxyConnection(ProxyHeaderFactory(self.recording, self.headers))
        c.send(V1_TCP4)
        self.assertIsNone(IHalfCloseableProtocol(c.wrapper, None))


def proxiedTLS(factory: Any, directory: str) -> tuple[MemoryReactorClock, Any]:
    """
    Listen with C{ssl:} through L{listenWithProxyHeaders}, under the TLS
    that answers after a client's close, as C{listenOn} does.

    @return: the memory reactor, and the factory it was given.
    """
    reactor = MemoryReactorClock()
    headers = ProxyHeaders(reactor, Counters(), TIMEOUT)
    key, certificate = selfSignedCertificate(directory)
    endpoint = serverFromString(
        listenWithHalfCloseableTLS(listenWithProxyHeaders(reactor, headers)),
        f"ssl:0:privateKey={key}:certKey={certificate}",
    )
    endpoint.listen(factory)
    return reactor, reactor.tcpServers[0][1]


class ListenerTests(Setup, SynchronousTestCase):
    def test_descriptions(self) -> None:
        """
        A C{haproxy:} description wraps the one after its prefix, as
        written; others wrap none.
        """
        self.assertEqual(
            proxiedDescription("haproxy:tcp:8787:interface=\\:\\:1"), "tcp:8787:interface=\\:\\:1"
        )
        self.assertEqual(proxiedDescription("HAProxy:ssl:443"), "ssl:443")
        self.assertIsNone(proxiedDescription("tcp:8787"))
        self.assertIsNone(proxiedDescription("unix:haproxy"))

    def test_everyListenerReadsHeaders(self) -> None:
        """
        TCP, UNIX and inherited (systemd) listeners made through
        L{listenWithProxyHeaders} are given a L{ProxyHeaderFactory} around
        the factory; anything else is the reactor's.
        """
        reactor = MemoryReactorClock()
        proxied = listenWithProxyHeaders(reactor, self.headers)
        proxied.listenTCP(8787, self.recording, 4096, "127.0.0.1")
        proxied.listenUNIX("/run/avatard.sock", self.recording)
        proxied.adoptStreamPort(3, socket.AF_INET, self.recording)
        self.assertEqual(reactor.tcpServers[0][2:], (4096, "127.0.0.1"))
        for factory in (reactor.tcpServers[0][1], reactor.unixServers[0][1], reactor.adoptedPorts[0][2]):
            assert isinstance(factory, ProxyHeaderFactory)
            self.assertIs(factory.wrappedFactory, self.recording)
        self.assertEqual(proxied.seconds(), reactor.seconds())

    def test_headerBeforeTLS(self) -> None:
        """
        Under C{haproxy:ssl:}, the header comes first, in the clear, as
        HAProxy sends it, then TLS: the client named is served, its
        half-close answered.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        store = ControlledStore()
        _, factory = proxiedTLS(self.whoFactory(store), directory)
        self.assertIsInstance(factory, ProxyHeaderFactory)
        self.assertIsInstance(factory.wrappedFactory, TLSMemoryBIOFactory)
        c = ProxyConnection(factory)
        c.send(V1_TCP4)
        tls = c.wrapper.wrappedProtocol
        self.assertIsInstance(tls, HalfCloseableTLSProtocol)
        client = MemoryTLSClient(ssl.TLSVersion.TLSv1_3)

        def pump() -> None:
            while True:
                toServer = client.toSend()
                if toServer:
                    c.send(toServer)
                toClient = c.transport.value()
                c.transport.clear()
                if toClient:
                    client.receive(toClient)
                if not toServer and not toClient:
                    return

        while not client.handshake():
            pump()
        client.write(b"WHO yoen\n")
        pump()
        c.halfClose()
        store.answer(0, YOEN)
        pump()
        self.assertEqual(client.received, TUTORIAL_REPLIES["yoen"])
        assert isinstance(tls, HalfCloseableTLSProtocol)
        who = tls.wrappedProtocol
        assert isinstance(who, WhoProtocol)
        self.assertEqual(who.peerHost, "192.0.2.7")
        self.assertTrue(c.transport.disconnecting)

    def test_listenSSLWithoutHalfCloseableTLS(self) -> None:
        """
        Without the TLS that answers after a close (the finger front-end),
        C{listenSSL} still reads the header before Twisted's own TLS.
        """
        reactor = MemoryReactorClock()
        proxied = listenWithProxyHeaders(reactor, self.headers)
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        proxied.listenSSL(79, self.recording, tlsOptions(directory))
        factory = reactor.tcpServers[0][1]
        assert isinstance(factory, ProxyHeaderFactory)
        tls = factory.wrappedFactory
        assert isinstance(tls, TLSMemoryBIOFactory)
        self.assertIs(tls.wrappedFactory, self.recording)
