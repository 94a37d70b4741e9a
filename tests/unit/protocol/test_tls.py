"""
L{avatard.protocol.tls}: a TLS client's close, or TCP half-close, ends its input;
it is answered before the server closes; on memory transports, with a
real TLS client.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocolFactory
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from avatard.interfaces import IAvatarStore
from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.protocol.tls import halfCloseableTLSFactory, listenWithHalfCloseableTLS
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.tap import makeService
from tests.helpers import (
    PEER,
    TUTORIAL_REPLIES,
    ControlledStore,
    DictStore,
    ThreadedMemoryReactor,
    options,
    selfSignedCertificate,
    tutorialDatabase,
)
from tests.tlsclient import MemoryTLSClient

TLS13 = ssl.TLSVersion.TLSv1_3
TLS12 = ssl.TLSVersion.TLSv1_2
YOEN = Avatar("yoen", "Van der Veld", "Yoen")


def tlsOptions(directory: str) -> Any:
    """
    @return: TLS server options with a fresh certificate, written to
        C{directory}.
    """
    key, certificate = selfSignedCertificate(directory)
    with open(certificate) as c, open(key) as k:
        return PrivateCertificate.loadPEM(c.read() + k.read()).options()


def whoFactory(store: IAvatarStore, clock: Clock) -> WhoFactory:
    return WhoFactory(Responder(store, ClassicRenderer(), clock), clock)


class TLSConnection:
    """
    A server's TLS connection on a StringTransport, built by a TLS server
    factory as a listening port builds it, and a real TLS client talking
    to it.
    """

    def __init__(self, factory: IProtocolFactory, version: ssl.TLSVersion) -> None:
        server = factory.buildProtocol(PEER)
        assert server is not None
        self.server = server
        self.transport = StringTransport(peerAddress=PEER)
        server.makeConnection(self.transport)
        self.client = MemoryTLSClient(version)
        while not self.client.handshake():
            self.pump()
        self.pump()

    def halfClose(self) -> None:
        """
        The client shuts down its sending side, as TCP tells a protocol
        that handles a half-close.
        """
        IHalfCloseableProtocol(self.server).readConnectionLost()

    def pump(self) -> None:
        """
        Carry bytes both ways until neither side has any to send.
        """
        while True:
            toServer = self.client.toSend()
            if toServer:
                self.server.dataReceived(toServer)
            toClient = self.transport.value()
            self.transport.clear()
            if toClient:
                self.client.receive(toClient)
            if not toServer and not toClient:
                return

    def send(self, requests: bytes, close: bool = True) -> None:
        """
        Send C{requests}, and with C{close} the TLS close, in one write.
        """
        self.client.write(requests)
        if close:
            self.client.close()
        self.pump()


class ClientCloseTests(SynchronousTestCase):
    """
    The client's TLS close after its requests.
    """

    def connect(self, store: IAvatarStore, version: ssl.TLSVersion = TLS13) -> TLSConnection:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        clock = Clock()
        factory = TLSMemoryBIOFactory(tlsOptions(directory), False, whoFactory(store, clock), clock=clock)
        connection = TLSConnection(halfCloseableTLSFactory(factory), version)
        self.assertEqual(connection.client.version(), "TLSv1.3" if version is TLS13 else "TLSv1.2")
        return connection

    def assertAnsweredThenClosed(self, c: TLSConnection, store: ControlledStore) -> None:
        """
        Once the lookup of C{yoen} waiting in C{store} is answered, the
        client gets the reply, then the server's TLS close, and the server
        closes TCP.
        """
        store.answer(0, YOEN)
        c.pump()
        self.assertEqual(c.client.received, TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.client.closedByServer)
        self.assertTrue(c.transport.disconnecting)

    def test_repliesAnsweredAtOnceComeBeforeTheServersClose(self) -> None:
        """
        Requests answered at once, sent in the same write as the client's
        TLS close, are answered, then the server closes: its TLS close,
        then TCP.
        """
        c = self.connect(DictStore())
        c.send(b"WHO yoen\nWHO esteban\n")
        self.assertEqual(c.client.received, TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"])
        self.assertTrue(c.client.closedByServer)
        self.assertTrue(c.transport.disconnecting)

    def test_replyThatWaitsForALookupIsSentAfterTheClientsClose(self) -> None:
        """
        Over TLS 1.3, a reply whose lookup completes after the client's TLS
        close arrived is still sent; the server closes only then.
        """
        store = ControlledStore()
        c = self.connect(store)
        c.send(b"WHO yoen\n")
        self.assertEqual(len(store.pending), 1)
        self.assertEqual(c.client.received, b"")
        self.assertFalse(c.client.closedByServer)
        self.assertFalse(c.transport.disconnecting)
        self.assertAnsweredThenClosed(c, store)

    def test_closeWithNothingOwedClosesAtOnce(self) -> None:
        """
        A client's TLS close with no request owed an answer is answered
        with the server's close at once.
        """
        c = self.connect(DictStore())
        c.client.close()
        c.pump()
        self.assertTrue(c.client.closedByServer)
        self.assertTrue(c.transport.disconnecting)

    def test_tls12CloseIsAnsweredAtOnce(self) -> None:
        """
        Over TLS 1.2, whose close rules (RFC 5246 section 7.2.1) require
        answering a close at once and discarding pending writes, requests
        answered at once are answered, a reply still waiting for its lookup
        is not, and the server closes at once.
        """
        store = ControlledStore()
        c = self.connect(store, TLS12)
        c.send(b"PING\nWHO yoen\n")
        self.assertEqual(c.client.received, b"OK pong\r\n")
        self.assertTrue(c.client.closedByServer)
        self.assertTrue(c.transport.disconnecting)
        store.answer(0, YOEN)
        c.pump()
        self.assertEqual(c.client.received, b"OK pong\r\n")

    def test_tcpHalfCloseEndsTheInput(self) -> None:
        """
        A client that shuts down its sending side without a TLS close is
        answered too; the server then sends its TLS close and closes TCP,
        since the client's own TLS close can no longer come.
        """
        store = ControlledStore()
        c = self.connect(store, TLS12)
        c.send(b"WHO yoen\n", close=False)
        c.halfClose()
        self.assertFalse(c.transport.disconnecting)
        self.assertAnsweredThenClosed(c, store)

    def test_tcpHalfCloseAfterTheTLSClose(self) -> None:
        """
        The TCP half-close that follows a client's TLS close changes
        nothing: the reply still waiting is sent.
        """
        store = ControlledStore()
        c = self.connect(store)
        c.send(b"WHO yoen\n")
        c.halfClose()
        self.assertFalse(c.transport.disconnecting)
        self.assertAnsweredThenClosed(c, store)

    def test_connectionLostWhileWaiting(self) -> None:
        """
        A connection lost while a reply waits (the client reset it) drops
        that reply without an error.
        """
        store = ControlledStore()
        c = self.connect(store)
        c.send(b"WHO yoen\n")
        c.server.connectionLost(Failure(ConnectionDone()))
        store.answer(0, YOEN)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_halfCloseableTransport(self) -> None:
        """
        The TLS connection tells TCP that it handles a half-close itself.
        """
        c = self.connect(DictStore())
        self.assertIs(IHalfCloseableProtocol(c.server, None), c.server)


class ListenerTests(SynchronousTestCase):
    """
    L{listenWithHalfCloseableTLS}: the TLS listeners made through it, and
    only those, answer what a client asked before its TLS close.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.key, self.certificate = selfSignedCertificate(self.directory)
        self.reactor = MemoryReactorClock()
        self.store = ControlledStore()
        self.application = whoFactory(self.store, self.reactor)

    def listened(self, description: str) -> IProtocolFactory:
        """
        @return: the factory that the TCP port listening as C{description}
            says builds its connections with.
        """
        endpoint = serverFromString(listenWithHalfCloseableTLS(self.reactor), description)
        endpoint.listen(self.application)
        factory: IProtocolFactory = self.reactor.tcpServers[-1][1]
        return factory

    def assertAnswersAfterTheClientsClose(self, factory: IProtocolFactory) -> None:
        """
        A TLS 1.3 client of a port listening with C{factory} that sends a
        request and its TLS close in one write gets the reply, which waited
        for a lookup, then the server's close.
        """
        c = TLSConnection(factory, TLS13)
        c.send(b"WHO yoen\n")
        self.assertEqual(c.client.received, b"")
        self.store.answer(0, YOEN)
        c.pump()
        self.assertEqual(c.client.received, TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.client.closedByServer)

    def test_sslEndpoint(self) -> None:
        """
        An C{ssl:} endpoint's connections answer after the client's close.
        """
        self.assertAnswersAfterTheClientsClose(
            self.listened(f"ssl:0:privateKey={self.key}:certKey={self.certificate}")
        )

    def test_tlsEndpoint(self) -> None:
        """
        So do a C{tls:} endpoint's.
        """
        self.assertAnswersAfterTheClientsClose(self.listened(f"tls:{self.directory}:port=0"))

    def test_plainTCPUnchanged(self) -> None:
        """
        A plain TCP endpoint listens with the factory it was given.
        """
        self.assertIs(self.listened("tcp:0"), self.application)

    def test_twistedsOwnTLSUnchanged(self) -> None:
        """
        TLS listeners made otherwise are Twisted's own: an C{ssl:} endpoint
        on the reactor itself hands it the factory it was given, and
        Twisted's TLS factories build the protocol they built before.
        """
        before = TLSMemoryBIOFactory.protocol
        self.listened(f"ssl:0:privateKey={self.key}:certKey={self.certificate}")
        self.assertIs(TLSMemoryBIOFactory.protocol, before)
        serverFromString(self.reactor, f"ssl:0:privateKey={self.key}:certKey={self.certificate}").listen(
            self.application
        )
        self.assertIs(self.reactor.sslServers[-1][1], self.application)

    def test_daemonPortUsesIt(self) -> None:
        """
        The daemon's C{--port ssl:...} answers a request sent in the same
        write as the client's TLS close, then closes.
        """
        db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))
        reactor = ThreadedMemoryReactor()
        service = makeService(
            options("--db", db, "--port", f"ssl:0:privateKey={self.key}:certKey={self.certificate}"), reactor
        )
        service.privilegedStartService()
        c = TLSConnection(reactor.tcpServers[-1][1], TLS13)
        c.send(b"WHO yoen\n")
        self.assertEqual(c.client.received, TUTORIAL_REPLIES["yoen"])
        self.assertTrue(c.client.closedByServer)
        c.server.connectionLost(Failure(ConnectionDone()))
        with capturedLogs():
            self.successResultOf(service.stopService())
