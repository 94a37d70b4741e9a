"""
Fair shares of the reactor's turns for connections with much to do.

One client that pipelines thousands of requests in a read must not hold
the reactor for all of them while every other client waits: a connection
answers at most L{avatard.limits.Limits.linesPerTurn} of its requests at a
time, then steps aside until the reactor's next turn, after every other
connection's reads of this turn have been served.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class NextTurn:
    """
    Runs what is given to L{later} on the reactor's next turn, in the order
    given, with one delayed call for all of it.

    A delayed call of no delay runs once the reactor has served the
    descriptors that were ready in the turn it was made in: the connections
    that stepped aside in one turn are resumed together at the start of
    the next, each for one more share, and whatever became ready meanwhile
    is served after them.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._waiting: list[Callable[[], None]] = []
        self._call: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def later(self, resume: Callable[[], None]) -> None:
        """
        Call C{resume} on the next turn.
        """
        self._waiting.append(resume)
        if self._call is None:
            self._call = self.clock.callLater(0, self._run)

    def _run(self) -> None:
        self._call = None
        waiting, self._waiting = self._waiting, []
        for resume in waiting:
            resume()
