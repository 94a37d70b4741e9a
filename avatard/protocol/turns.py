"""
Fair shares of the reactor's turns for connections with much to do.

One client that pipelines thousands of requests in a read must not hold
the reactor for all of them while every other client waits.  In each turn
of the reactor a connection may answer its share of requests: a share of
its own (L{avatard.protocol.limits.Limits.linesPerTurn}), plus whatever is left of
the turn's spare (L{avatard.protocol.limits.Limits.spareLinesPerTurn}), which the
first connections to need it take.  With its share used, a connection
steps aside until the next turn, after every other connection's reads of
this turn have been served.

So the requests answered in one turn are at most the spare and one share
per busy connection: a well-behaved client waits for little more, however
many clients flood; while a lone client pipelining deep is answered the
spare's worth at a time, and pays for few extra turns.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class NextTurn:
    """
    Deals out shares of the reactor's turns, and runs what is given to
    L{later} on the next turn, in the order given, with one delayed call
    for all of it.

    A delayed call of no delay runs once the reactor has served the
    descriptors that were ready in the turn it was made in: the connections
    that stepped aside in one turn are resumed together at the start of
    the next, each for one more share, and whatever became ready meanwhile
    is served after them.  The spare is whole again at the start of each
    turn that follows one in which a connection stepped aside (not of
    every turn: knowing when a turn begins would cost a delayed call, a
    turn of its own, each time; so a turn never answers more than the
    spare beyond the shares, and sometimes less).

    @ivar spare: requests beyond their own shares that connections may
        still answer in this turn.
    """

    def __init__(self, clock: IReactorTime, share: int = 100, spare: int = 0) -> None:
        self.clock = clock
        self._share = share
        self._spare = spare
        self.spare = spare
        self._waiting: list[Callable[[], None]] = []
        self._call: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def share(self) -> int:
        """
        @return: how many requests a connection may answer now: its own
            share, or what is left of the spare if that is more.
        """
        return max(self._share, self.spare)

    def took(self, answered: int) -> None:
        """
        A connection answered C{answered} requests of the share it was
        given: what is beyond its own share comes out of the spare.
        """
        if answered > self._share:
            self.spare = max(0, self.spare - (answered - self._share))

    def later(self, resume: Callable[[], None]) -> None:
        """
        Call C{resume} on the next turn.
        """
        self._waiting.append(resume)
        self._schedule()

    def _schedule(self) -> None:
        if self._call is None:
            self._call = self.clock.callLater(0, self._run)

    def _run(self) -> None:
        self._call = None
        self.spare = self._spare
        waiting, self._waiting = self._waiting, []
        for resume in waiting:
            resume()
