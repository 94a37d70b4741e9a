"""
Closing a connection whose client may still be sending, without losing
what was sent to it.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ISSLTransport, ITransport

LINGER = 2.0
"""
Seconds a closing connection goes on reading, and discarding, what its
client still sends, so that what was sent to it reaches it.
"""


def closeLingering(transport: ITransport, clock: IReactorTime, inputEnded: bool) -> IDelayedCall | None:
    """
    Close C{transport} once everything written to it is sent.

    Closing outright while the client may still be sending (after C{QUIT},
    a too-long line, a timeout, a finger query with more after it) would
    leave its unread bytes in the kernel, which then answers the close with
    a reset that destroys what the client has not received yet.  So the
    close lingers, as Apache's does: shut down our sending side, read and
    discard what the client still sends until it closes too, or for at most
    L{LINGER} seconds.  The caller discards what it reads meanwhile.

    @param inputEnded: whether the client has ended its input already, so
        that nothing more can arrive: then the close is immediate.
    @return: the delayed call that ends the lingering, to cancel if the
        connection is lost before; L{None} if the close is immediate.
    """
    loseWriteConnection = getattr(transport, "loseWriteConnection", None)
    # A TLS transport passes loseWriteConnection through to the TCP
    # connection under it, which would cut off what is still inside the TLS
    # layer: it closes with its own loseConnection, which sends it and then
    # the TLS close alert.
    if inputEnded or loseWriteConnection is None or ISSLTransport.providedBy(transport):
        transport.loseConnection()
        return None
    cast(IPushProducer, transport).resumeProducing()
    loseWriteConnection()
    return clock.callLater(LINGER, transport.loseConnection)
