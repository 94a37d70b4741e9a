"""
TLS connections that answer every request read before the client's close.

Twisted's TLS, as C{ssl:} and C{tls:} server endpoints set it up, loses the
replies of a client that ends its input right after its requests (C{echo
'WHO yoen' | socat - OPENSSL:...}), for two reasons:

 1. Its default TLS protocol, C{BufferingTLSTransport}, gathers small
    writes and sends them on the next reactor turn.  When the client's TLS
    close (C{close_notify}) arrives in the same read as its request, the
    TLS connection is marked lost before that turn and the gathered reply
    is dropped without a word.
 2. On the client's TLS close, L{TLSMemoryBIOProtocol} answers with its own
    close at once and drops every later write: a reply that waits for the
    database thread, or the tail of a long pipeline, is lost too.  Nor does
    it pass on a client's TCP half-close: the connection is torn down with
    whatever was still to be sent.

L{HalfCloseableTLSProtocol} is the plain L{TLSMemoryBIOProtocol} (no
gathering: the connection already writes the replies of one read
together) that treats the end of the client's input as the end of input,
as TCP does for a protocol that provides L{IHalfCloseableProtocol}:

 - Over TLS 1.3, whose close is a half-close (RFC 8446 section 6.1), the
   client's C{close_notify} ends its input: the application is told
   (C{readConnectionLost}) and goes on sending; the server sends its own
   C{close_notify} when the application closes, once it has answered
   everything.
 - Over TLS 1.2 and older, RFC 5246 section 7.2.1 requires answering a
   C{close_notify} at once with one's own and discarding pending writes:
   Twisted's own handling is kept.
 - A TCP half-close (the client shuts down its sending side) ends the
   input too, over any version; the connection closes once the
   application has answered and closed.

L{listenWithHalfCloseableTLS} gives an endpoint description's parser a
reactor under which every TLS listener it makes uses this protocol: the
C{ssl:} endpoint calls C{listenSSL}, which builds a L{TLSMemoryBIOFactory};
the C{tls:} endpoint hands one to C{listenTCP}.  The factory names its
protocol class, and only those factories are given this one: Twisted's
behaviour elsewhere in the process is unchanged.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet.interfaces import IHalfCloseableProtocol, IListeningPort, IProtocolFactory
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.protocol.listening import ListeningReactor

RECEIVE_SIZE = 2**15
"""
The most bytes of application data taken from the TLS layer at once (as
Twisted takes them).
"""


@implementer(IHalfCloseableProtocol)
class HalfCloseableTLSProtocol(TLSMemoryBIOProtocol):
    """
    A server's TLS connection on which the end of the client's input, its
    TLS 1.3 close or a TCP half-close, is an end of input for the
    application, which then answers what it has read and closes: see the
    module docstring.

    @ivar inputEnded: the client will send nothing more, and the
        application has been told so, or the connection is closing.
    """

    inputEnded = False
    _tcpInputEnded = False

    def _flushReceiveBIO(self) -> None:
        # Overrides TLSMemoryBIOProtocol._flushReceiveBIO (Twisted 24.7 to
        # 26.10), the one place where Twisted learns of the client's TLS
        # close, and which answers it at once: there is no public hook
        # between the two.  The rest is Twisted's own loop.
        while not self._lostTLSConnection and not self.inputEnded:
            try:
                data = self._tlsConnection.recv(RECEIVE_SIZE)
            except WantReadError:
                break
            except ZeroReturnError:
                if self._halfClose(self._tlsHalfCloses()):
                    break
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()

    def _tlsHalfCloses(self) -> bool:
        version: str = self.getHandle().get_protocol_version_name()
        return version == "TLSv1.3"

    def _halfClose(self, allowed: bool) -> bool:
        """
        The client's input has ended: tell the application, when C{allowed}
        and it wants to know.

        @return: whether it was told; if not, the connection must close.
        """
        application = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if not allowed or application is None or self.disconnecting:
            return False
        self.inputEnded = True
        application.readConnectionLost()
        return True

    def readConnectionLost(self) -> None:
        """
        The client has shut down its sending side: TLS can carry nothing
        more from it, not even its TLS close.
        """
        self._tcpInputEnded = True
        if self.inputEnded:
            # Its TLS close came first: the application knows already.
            return
        if not self._lostTLSConnection and self._halfClose(True):
            return
        self.inputEnded = True
        assert self.transport is not None
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Nothing more can reach the client: tell the application, as TCP
        would.
        """
        application = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if application is not None:
            application.writeConnectionLost()

    def loseConnection(self) -> None:
        """
        Send what is written, then the TLS close; close the TCP connection
        once the client's TLS close has come, or at once (after what is
        written) when it can no longer come.
        """
        super().loseConnection()
        if self._tcpInputEnded and self.transport is not None:
            self.transport.loseConnection()


def halfCloseableTLSFactory(factory: TLSMemoryBIOFactory) -> TLSMemoryBIOFactory:
    """
    @return: C{factory}, which now builds L{HalfCloseableTLSProtocol}s.
    """
    factory.protocol = HalfCloseableTLSProtocol
    return factory


class _HalfCloseableTLSReactor(ListeningReactor):
    """
    A reactor whose TLS listeners use L{HalfCloseableTLSProtocol} (those of
    C{ssl:} endpoints too, which C{listenSSL} makes through C{listenTCP});
    anything else is the reactor's own.
    """

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        """
        Listen, as the reactor does; a TLS factory (the C{tls:} endpoint's)
        builds L{HalfCloseableTLSProtocol}s.
        """
        if isinstance(factory, TLSMemoryBIOFactory):
            factory = halfCloseableTLSFactory(factory)
        listening: IListeningPort = self._reactor.listenTCP(port, factory, backlog, interface)
        return listening


def listenWithHalfCloseableTLS(reactor: Any) -> Any:
    """
    @return: a reactor to parse server endpoint descriptions with: TLS
        listeners made through it (C{ssl:}, C{tls:}, also inside
        C{haproxy:}) use L{HalfCloseableTLSProtocol}; everything else is
        C{reactor}'s.
    """
    return _HalfCloseableTLSReactor(reactor)
