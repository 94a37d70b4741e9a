"""
What makes a worker's service tree differ from a single process's: the
sockets it adopts, its share of the limits, whom it tells it is ready,
what it does with its metrics, and its number in C{STATS}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from avatard.protocol.limits import Limits
from avatard.workers.channel import ParentChannel, ParentNotifier
from avatard.workers.sockets import InheritedReactor


def shareOf(total: int, count: int, index: int) -> int:
    """
    @return: worker C{index}'s share (1 to C{count}) of a limit of C{total}
        for the group: the shares add up to C{total}, the first workers
        taking one more when it does not divide evenly, and none is less
        than 1.
    """
    share = total // count + (1 if index <= total % count else 0)
    return max(share, 1)


def shareLimits(limits: Limits, count: int, index: int, groupMaxConnections: bool) -> Limits:
    """
    @param groupMaxConnections: whether C{limits.maxConnections} was
        given for the group (C{--max-connections}); the default, the
        open-file limit, is each process's own.
    @return: worker C{index}'s share of C{limits}, of a group of C{count}:
        its share (L{shareOf}) of C{--max-connections} and of
        C{--max-per-ip}.
    """
    maxConnections = limits.maxConnections
    if groupMaxConnections:
        maxConnections = shareOf(maxConnections, count, index)
    perAddress = limits.maxPerAddress
    if perAddress:
        perAddress = shareOf(perAddress, count, index)
    return dataclasses.replace(limits, maxConnections=maxConnections, maxPerAddress=perAddress)


@dataclasses.dataclass
class WorkerRole:
    """
    Worker C{index} of C{count}.

    @ivar sockets: the descriptor of the listening socket of each endpoint
        description, in order (every C{--port}, then every C{--finger}).
    @ivar channel: its messages to the twistd process.
    @ivar registry: its metrics registry, once built with C{--metrics}.
    """

    index: int
    count: int
    sockets: list[int]
    channel: ParentChannel
    registry: Any = None

    def reactorFor(self, reactor: Any, listener: int) -> InheritedReactor:
        """
        @return: the reactor to parse the description of listener number
            C{listener} with: it adopts that listener's socket.
        """
        return InheritedReactor(reactor, self.sockets[listener])

    def share(self, limits: Limits, groupMaxConnections: bool) -> Limits:
        """
        @return: this worker's share of C{limits}, as L{shareLimits} says.
        """
        return shareLimits(limits, self.count, self.index, groupMaxConnections)

    def notifier(self) -> ParentNotifier:
        """
        @return: where its readiness goes: to the twistd process.
        """
        return ParentNotifier(self.channel)

    def exportMetrics(self, registry: Any) -> None:
        """
        Keep the metrics registry, to answer the twistd process with.
        """
        self.registry = registry
