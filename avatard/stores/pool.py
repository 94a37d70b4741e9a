"""
What both backends build on: a C{twisted.enterprise.adbapi} connection pool
owned by a service, the connections it has open as its C{cp_openfun} tells
of them, and lookups that can be abandoned.

Everything here goes through adbapi's public interface: C{cp_openfun},
C{connect}, C{disconnect}, C{runWithConnection}, C{threadpool}, C{start}
and C{close}.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.application.service import MultiService
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.interfaces import IAvatarStore, IChangeWatch, IStorage

T = TypeVar("T")
C = TypeVar("C")

POOL_NAME = "avatard-db"
"""
The name of the database thread pool: its threads are C{PoolThread-avatard-db-N}.
"""


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


class OpenConnections(Generic[C]):
    """
    The connections a L{ConnectionPool} has open, as it tells of them: pass
    L{opened} as its C{cp_openfun}.

    adbapi keeps one connection per pool thread, opened in that thread when
    it first needs one, and opened again there once the one it had was
    disconnected (C{pool.disconnect}, C{Connection.reconnect}): the last
    connection opened in each thread is the one that thread has.  The
    daemon's shutdown reaches them here, from the reactor thread, to make a
    query still running on them give up.

    @param prepare: what to do first with each new connection (the pool's
        own C{cp_openfun}, had it one).
    """

    def __init__(self, prepare: Callable[[C], object] | None = None) -> None:
        self._prepare = prepare
        self._lock = threading.Lock()
        self._byThread: dict[int, C] = {}
        self._local = threading.local()

    def opened(self, connection: C) -> None:
        """
        Prepare and count a connection the pool has just opened: the pool's
        C{cp_openfun}, called in the pool thread that opened it.
        """
        if self._prepare is not None:
            self._prepare(connection)
        with self._lock:
            self._byThread[threading.get_ident()] = connection
        self._local.opened = connection

    def forget(self, connection: C) -> None:
        """
        Stop counting C{connection}: called in the pool thread that
        disconnected it from the pool.
        """
        with self._lock:
            if self._byThread.get(threading.get_ident()) is connection:
                del self._byThread[threading.get_ident()]

    def connect(self, pool: ConnectionPool) -> tuple[C, bool]:
        """
        In a pool thread: C{pool.connect()}.

        @return: this thread's connection, and whether it was opened by
            this call (rather than kept from an earlier one).
        """
        self._local.opened = None
        connection: C = pool.connect()
        return connection, self._local.opened is connection

    def current(self) -> list[C]:
        """
        @return: the connections open now, at most one per pool thread;
            from any thread.
        """
        with self._lock:
            return list(self._byThread.values())


def connectionPool(
    dbapiName: str,
    *connectArguments: Any,
    connections: OpenConnections[Any],
    reactor: Any,
    threads: int,
    **connectKeywords: Any,
) -> ConnectionPool:
    """
    Make a pool whose threads are named after L{POOL_NAME}, and whose new
    connections C{connections} prepares and counts.  No connection is made
    until a query needs one.

    @param threads: the most threads, hence connections, the pool runs; it
        starts one.
    """
    pool = ConnectionPool(
        dbapiName,
        *connectArguments,
        cp_min=1,
        cp_max=threads,
        cp_noisy=False,
        cp_reactor=reactor,
        cp_openfun=connections.opened,
        **connectKeywords,
    )
    pool.threadpool.name = POOL_NAME
    return pool


class PoolService(MultiService):
    """
    Owns a L{ConnectionPool}, and the services that read the database
    beside it (its children, such as a change listener).

    L{startService} starts the pool's threads, then the children, which may
    use them.  L{stopService} stops the children, then calls C{interrupt},
    if given, so that a query still running gives up (by then nobody waits
    for its answer, and a query waiting on another process's lock or on a
    server that does not answer would otherwise hold the shutdown back),
    then closes the pool, which joins its threads: none is left behind.

    The pool is closed once, here, whether or not it was started.
    L{ConnectionPool.close} also removes the pool's own shutdown trigger, so
    the reactor never closes it again (which would log C{AlreadyQuit}).

    @ivar pool: the pool this service owns.
    """

    name = "pool"

    def __init__(self, pool: ConnectionPool, interrupt: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.pool = pool
        self.interrupt = interrupt
        self._closed = False

    def startService(self) -> None:
        self.pool.start()
        super().startService()

    def stopService(self) -> Deferred[None]:
        stopped: Deferred[Any] = super().stopService()
        return stopped.addBoth(lambda _: self._close())

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.interrupt is not None:
                self.interrupt()
        finally:
            self.pool.close()


@implementer(IStorage)
class PoolStorage:
    """
    What the daemon reads a database through, when that is a connection
    pool owned by a L{PoolService}.
    """

    def __init__(self, service: PoolService, store: IAvatarStore, watch: IChangeWatch | None) -> None:
        self.service = service
        self.store = store
        self.watch = watch

    def poolState(self) -> tuple[int, int]:
        threadpool = self.service.pool.threadpool
        return len(threadpool.working), threadpool.max
