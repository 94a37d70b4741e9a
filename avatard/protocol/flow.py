"""
How a connection learns from its transport when to stop reading its
client's requests, and when to go on.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IPullProducer, IPushProducer
from zope.interface import implementer

# Reasons to stop reading from a client.
PENDING = "pending replies"
UNSENT = "unsent replies"
TURN = "its share of the turn is used"


@implementer(IPullProducer)
class SendWatch:
    """
    Registered with the transport as a pull producer.  A transport asks its
    pull producer for more each time it has sent everything it was given
    (L{IConsumer.registerProducer}): that is how the connection learns that
    none of its replies wait unsent.
    """

    __slots__ = ("resumeProducing",)

    def __init__(self, allSent: Callable[[], None]) -> None:
        # Called for every write the transport completes: one call, not two.
        self.resumeProducing = allSent

    def stopProducing(self) -> None:
        pass


@implementer(IPushProducer)
class WriteBufferWatch:
    """
    Registered with a TLS transport as a streaming producer, so that the
    transport tells us when a client does not read its replies fast enough
    (L{UNSENT}).  (TLS would drive a pull producer with a loop of calls.)
    """

    def __init__(self, pause: Callable[[str], None], resume: Callable[[str], None]) -> None:
        self._pause = pause
        self._resume = resume

    def pauseProducing(self) -> None:
        self._pause(UNSENT)

    def resumeProducing(self) -> None:
        self._resume(UNSENT)

    def stopProducing(self) -> None:
        pass
