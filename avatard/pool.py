"""
The connection pool as a service: one owner, started and closed with the
daemon.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.enterprise.adbapi import ConnectionPool


class ConnectionPoolService(Service):
    """
    Owns a L{ConnectionPool}: starts its threads in L{startService} and
    closes it in L{stopService}.

    L{ConnectionPool.close} also removes the pool's own shutdown trigger, so
    the pool is closed exactly once, here, and never again by the reactor
    (which would log C{AlreadyQuit}).  Closing waits for a query already
    running to finish and leaves no thread behind.

    @ivar pool: the pool this service owns.
    """

    name = "pool"

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        super().stopService()
        self.pool.close()
