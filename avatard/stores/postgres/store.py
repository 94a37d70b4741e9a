"""
The PostgreSQL store: many avatard nodes sharing one database server.

Reads go through a C{twisted.enterprise.adbapi} pool of a few threads, each
with its own autocommit connection (psycopg 3): a lookup is one statement,
so there is no transaction to commit or roll back.  adbapi's own
C{cp_reconnect} is not used: it finds a dead connection only after a
query on it failed, logs a "Rollback failed" traceback each time, and fails
the lookup anyway.  Here a pool thread checks the outcome of its own query
instead: a connection that broke (the server restarted, or an
administrator terminated its backend) is closed and dropped from the pool,
and the lookup is tried once more on a fresh connection, which succeeds
when the server is back.  A server that is down fails lookups quickly
(the connection is refused), or within the connect timeout, which is
derived from the query timeout; the daemon answers C{ERR unavailable}
meanwhile and connects again on the next lookup.

Where the database sends change notifications
(L{avatard.stores.postgres.notify}), the daemon's reply cache keeps
replies until a change; elsewhere for C{--cache-ttl} seconds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from avatard.interfaces import IAvatarStore
from avatard.model import SELECT_COLUMNS, Avatar, avatarFromRow
from avatard.stores.base import DatabaseError
from avatard.stores.pool import OpenConnections, PoolService, PoolStorage, abandonable, connectionPool
from avatard.stores.postgres.notify import ChangeListener, notificationsProblem

T = TypeVar("T")

SELECT_ONE = f"SELECT {SELECT_COLUMNS} FROM users WHERE login = %s"  # noqa: S608
SELECT_MANY = f"SELECT {SELECT_COLUMNS} FROM users WHERE login = ANY(%s)"  # noqa: S608

POOL_SIZE = 4
"""
Threads, hence connections, per daemon.  One batch of lookups is at the
database at a time (L{avatard.request.coalesce.CoalescingStore}); the others stand
by for when a batch is abandoned on a connection that hangs.
"""

TCP_USER_TIMEOUT_MS = 10_000
"""
Unless the URL sets C{tcp_user_timeout}: how long, in milliseconds, data
sent to the server may stay unacknowledged before the connection is given
up, so that a server gone silent (its host lost, a network partition) does
not hold a pool thread for the kernel's default of many minutes.
"""


class DatabaseUnavailable(Exception):
    """
    The PostgreSQL server could not be reached, or a query failed.  C{str()}
    of it is one line naming the database (its password redacted) and the
    cause.
    """


def firstLine(error: BaseException) -> str:
    """
    @return: the first line of an error's message: libpq adds hints on
        further lines.
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def connectTimeout(queryTimeout: float) -> int:
    """
    @return: libpq's C{connect_timeout} (whole seconds, at least 2) for a
        daemon whose lookups time out after C{queryTimeout} seconds.
    """
    return max(2, math.ceil(queryTimeout))


def connectArguments(url: str, queryTimeout: float) -> dict[str, Any]:
    """
    @return: the keyword arguments, besides the URL, given to
        C{psycopg.connect}: what the URL itself sets is never overridden.
    """
    given = conninfo_to_dict(url)
    arguments: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in given:
        arguments["connect_timeout"] = connectTimeout(queryTimeout)
    if "tcp_user_timeout" not in given:
        arguments["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
    if "application_name" not in given:
        arguments["application_name"] = "avatard"
    return arguments


def postgresPool(
    url: str, reactor: Any, queryTimeout: float
) -> tuple[ConnectionPool, OpenConnections[psycopg.Connection[Any]]]:
    """
    Make the connection pool the daemon reads through.  No connection is
    made until the first lookup.

    Each connection's statements are cancelled by the server after
    C{queryTimeout} seconds, by which time nobody waits for their answer.

    @return: the pool, and its open connections.
    """
    timeout = f"{max(1, math.ceil(queryTimeout * 1000))}ms"

    def prepare(connection: psycopg.Connection[Any]) -> None:
        connection.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))

    connections: OpenConnections[psycopg.Connection[Any]] = OpenConnections(prepare)
    pool = connectionPool(
        "psycopg",
        url,
        connections=connections,
        reactor=reactor,
        threads=POOL_SIZE,
        **connectArguments(url, queryTimeout),
    )
    return pool, connections


def _lookupOne(cursor: psycopg.Cursor[Any], login: str) -> Avatar | None:
    cursor.execute(SELECT_ONE, (login,))
    row = cursor.fetchone()
    return None if row is None else avatarFromRow(row)


def _lookupMany(cursor: psycopg.Cursor[Any], logins: list[str]) -> dict[str, Avatar]:
    # A batch of one (the usual case when the database keeps up) is
    # planned faster as an equality than as an array.
    if len(logins) == 1:
        cursor.execute(SELECT_ONE, (logins[0],))
    else:
        cursor.execute(SELECT_MANY, (logins,))
    found: dict[str, Avatar] = {}
    for row in cursor.fetchall():
        avatar = avatarFromRow(row)
        found[avatar.login] = avatar
    return found


@implementer(IAvatarStore)
class PostgresStore:
    """
    Looks avatars up in PostgreSQL through a connection pool made by
    L{postgresPool}.

    A lookup whose L{Deferred} is cancelled (as a timed-out lookup is) is
    answered at once; if it has not reached a pool thread yet, its query is
    never run.  Failures (a server down, a query cancelled by the statement
    timeout, a table gone) fail the lookup with L{DatabaseUnavailable}.

    Queries run in the pool's threads on the connection C{pool.connect()}
    gives each, rather than through C{runWithConnection}, whose rollback of
    a failed query would log a "Rollback failed" traceback for every dead
    connection: a thread checks the outcome of its own query instead.

    @ivar pool: the pool queries run on; its owner starts and closes it.
    @ivar connections: the connections the pool has open.
    @ivar name: how messages name the database, password redacted.
    @ivar reactor: the reactor its answers are delivered in (an
        C{IReactorFromThreads}).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        connections: OpenConnections[psycopg.Connection[Any]],
        name: str,
        reactor: Any,
    ) -> None:
        self.pool = pool
        self.connections = connections
        self.name = name
        self.reactor = reactor
        self._interrupted = threading.Event()

    def interrupt(self) -> None:
        """
        Make queries still running give up now, and make no new connection:
        called when the daemon stops, before the pool is closed.  Closing a
        connection from this thread ends a query that waits on it at once,
        even one waiting on a server that does not answer, which would
        otherwise hold the pool's threads, and so the shutdown, until it
        answers.
        """
        self._interrupted.set()
        for connection in self.connections.current():
            connection.close()

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        return self._run(_lookupOne, login)

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        return self._run(_lookupMany, list(dict.fromkeys(logins)))

    def _run(self, query: Callable[[Any, Any], T], argument: Any) -> Deferred[T]:
        return abandonable(
            lambda abandoned: deferToThreadPool(
                self.reactor, self.pool.threadpool, self._query, abandoned, query, argument
            )
        )

    def _query(self, abandoned: threading.Event, query: Callable[[Any, Any], T], argument: Any) -> T:
        """
        Run in a pool thread: on this thread's connection, made if there is
        none, and made again once if the one there turns out to be dead.
        """
        for attempt in (1, 2):
            if self._interrupted.is_set():
                raise DatabaseUnavailable(f"{self.name}: the daemon is stopping")
            if abandoned.is_set():
                # Already answered (cancelled): nobody waits for this.
                raise CancelledError()
            try:
                connection, fresh = self.connections.connect(self.pool)
            except psycopg.Error as e:
                raise DatabaseUnavailable(f"cannot connect to {self.name}: {firstLine(e)}") from None
            try:
                with connection.cursor() as cursor:
                    return query(cursor, argument)
            except psycopg.Error as e:
                if connection.broken or connection.closed:
                    # Dead (a server restart, a terminated backend): never
                    # use it again; a connection made before it died is
                    # worth one more try on a new one.
                    self.connections.forget(connection)
                    self.pool.disconnect(connection)
                    if not fresh and attempt == 1:
                        continue
                raise DatabaseUnavailable(f"{self.name}: {firstLine(e)}") from None
        raise AssertionError("unreachable")  # pragma: no cover


class Probed(NamedTuple):
    """
    What L{probe} found.

    @ivar unreachable: why the server could not be reached, or L{None}.
    @ivar silent: why the database sends no change notifications, or
        L{None} when it does (or could not be asked).
    """

    unreachable: str | None
    silent: str | None


def probe(url: str, name: str, timeout: float) -> Probed:
    """
    Check, before the daemon starts, that the database at C{url} (named
    C{name} in messages) has a usable C{users} table, and whether it sends
    change notifications.  Never creates or changes anything.

    A server that cannot be reached is not an error here: the daemon starts
    anyway, answers C{ERR unavailable} and connects once the server is up.

    @param timeout: the daemon's query timeout, from which the connect
        timeout is derived (L{connectArguments}).
    @raise DatabaseError: naming the problem, when the server answers and
        the table is not usable.
    """
    try:
        connection = psycopg.connect(url, **connectArguments(url, timeout))
    except psycopg.Error as e:
        return Probed(firstLine(e), None)
    try:
        connection.execute(f"SELECT {SELECT_COLUMNS} FROM users LIMIT 0")  # noqa: S608
        silent = notificationsProblem(connection)
    except psycopg.errors.UndefinedTable:
        raise DatabaseError(
            f"database {name} has no users table (create it with: avatard init {name})"
        ) from None
    except psycopg.errors.UndefinedColumn as e:
        raise DatabaseError(f"the users table in {name} lacks a column: {firstLine(e)}") from None
    except psycopg.OperationalError as e:
        return Probed(firstLine(e), None)
    except psycopg.Error as e:
        raise DatabaseError(f"cannot read database {name}: {firstLine(e)}") from None
    finally:
        connection.close()
    return Probed(None, silent)


def openStorage(url: str, name: str, reactor: Any, queryTimeout: float, listen: bool) -> PoolStorage:
    """
    Make what the daemon reads the database at C{url} through: a store on
    a pool of L{POOL_SIZE} threads and, with C{listen}, a
    L{ChangeListener} that tells when the data changes, a child of the
    pool's service (started after the pool, stopped before it closes).
    Without C{listen} (the database sends no change notifications),
    nothing tells: replies are cached for a bounded time.
    """
    pool, connections = postgresPool(url, reactor, queryTimeout)
    store = PostgresStore(pool, connections, name, reactor)
    service = PoolService(pool, store.interrupt)
    if not listen:
        return PoolStorage(service, store, None)
    listener = ChangeListener(url, name, reactor, pool.threadpool, connectArguments(url, queryTimeout))
    listener.setServiceParent(service)
    return PoolStorage(service, store, listener)
