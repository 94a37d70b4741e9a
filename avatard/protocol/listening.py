"""
Reactors that listen their own way: each is another reactor but for the
listening calls it defines.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from zope.interface import directlyProvides, providedBy


class ListeningReactor:
    """
    A reactor that is C{reactor} (its interfaces, every attribute) but for
    the listening methods a subclass defines, which endpoint parsers call
    when given it.

    C{listenSSL} listens with this reactor's own C{listenTCP}, TLS added
    over the factory (C{TLSMemoryBIOFactory}), so that whatever a subclass
    does to a TCP listener applies under the TLS as well.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        directlyProvides(self, providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        """
        Listen for TLS, as C{IReactorSSL.listenSSL} says, through
        C{listenTCP}.
        """
        # Only reached for ssl: endpoints, which need the TLS extra.
        from twisted.protocols.tls import TLSMemoryBIOFactory

        tlsFactory = TLSMemoryBIOFactory(contextFactory, False, factory, clock=self._reactor)
        listening: IListeningPort = self.listenTCP(port, tlsFactory, backlog, interface)
        return listening
