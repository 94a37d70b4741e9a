"""
The connection pool as a service: one owner, started and closed with the
daemon.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.enterprise.adbapi import ConnectionPool


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
