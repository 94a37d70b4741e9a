"""
The connection pool as a service: one owner, started and closed with the
daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from twisted.application.service import Service
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")


def abandonable(start: Callable[[threading.Event], Deferred[T]]) -> Deferred[T]:
    """
    Run work in a pool thread so that it can be abandoned.

    @param start: starts the work, given an event that is set once nobody
        waits for its result any more, and returns the L{Deferred} of that
        result.  Work that has not begun yet can then skip itself, and work
        waiting on a lock can give up.
    @return: a L{Deferred} of the work's result which, cancelled (as a
        timed-out lookup is), fails at once with C{CancelledError} and sets
        the event; the work's own result is then dropped.
    """
    abandoned = threading.Event()
    result: Deferred[T] = Deferred(lambda _: abandoned.set())

    def done(outcome: T | Failure) -> None:
        if not result.called:
            result.callback(outcome)

    start(abandoned).addBoth(done)
    return result


class ConnectionPoolService(Service):
    """
    Owns a L{ConnectionPool}: starts its threads in L{startService} and
    closes it in L{stopService}.

    L{ConnectionPool.close} also removes the pool's own shutdown trigger, so
    the pool is closed exactly once, here, and never again by the reactor
    (which would log C{AlreadyQuit}).  Closing first calls C{interrupt}, if
    given, so that a query still running gives up (by then nobody waits for
    its answer, and a query waiting on another process's lock would
    otherwise hold the shutdown back), then joins the pool's threads: none
    is left behind.

    @ivar pool: the pool this service owns.
    """

    name = "pool"

    def __init__(self, pool: ConnectionPool, interrupt: Callable[[], None] | None = None) -> None:
        self.pool = pool
        self.interrupt = interrupt

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        if self.interrupt is not None:
            self.interrupt()
        self.pool.close()
