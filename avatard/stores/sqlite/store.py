"""
The SQLite store: how the daemon reads an SQLite file.

The daemon reads through two read-only connections: one in the reactor
thread (L{InlineReader}) for reads that can complete at once, and one in a
C{twisted.enterprise.adbapi} pool of one thread for reads that must wait
for a lock.  SQLite serialises access to one file anyway, so more threads
would only add hand-offs and lock contention; C{check_same_thread=False}
lets the pool close its connection from the reactor thread at shutdown,
and the inline connection is only ever used by the reactor thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

from avatard.interfaces import IAvatarStore, IChangeWatch, IImmediateLookup, WouldBlock
from avatard.model import SELECT_COLUMNS, Avatar, avatarFromRow
from avatard.stores.base import DatabaseError
from avatard.stores.pool import OpenConnections, PoolService, PoolStorage, abandonable, connectionPool
from avatard.stores.sqlite.probe import fileURI, isLocked, walProblem

SELECT_ONE = f"SELECT {SELECT_COLUMNS} FROM users WHERE login = ?"  # noqa: S608

T = TypeVar("T")

BUSY_SLICE = 0.05
"""
Seconds one attempt at a query waits on another process's lock before
L{SQLiteStore} checks whether to go on waiting.
"""

PAGE_CACHE_KIB = 65536
"""
The most memory, in KiB, that SQLite's page cache of the inline connection
takes (SQLite's default is 2,000 KiB): with a million users, a default
cache holds a few percent of the pages a random lookup needs, and each
page it misses costs a system call; a 64 MiB one keeps most of them
(docs/PERFORMANCE.md).  It only grows as pages are read, so a small
database costs no more than its size.
"""

READ_SPAN = 0.001
"""
Seconds for which the reads of L{InlineReader} share one read transaction.
"""

# Far below SQLITE_MAX_VARIABLE_NUMBER on every SQLite still in use (999 on
# the oldest).
IN_CHUNK = 500


def _lookupOne(cursor: Any, login: str) -> Avatar | None:
    cursor.execute(SELECT_ONE, (login,))
    row = cursor.fetchone()
    return None if row is None else avatarFromRow(row)


def _lookupMany(cursor: Any, logins: list[str]) -> dict[str, Avatar]:
    found: dict[str, Avatar] = {}
    for start in range(0, len(logins), IN_CHUNK):
        chunk = logins[start : start + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        # Only placeholders are formatted in; the logins are parameters.
        cursor.execute(f"SELECT {SELECT_COLUMNS} FROM users WHERE login IN ({marks})", chunk)  # noqa: S608
        for row in cursor.fetchall():
            avatar = avatarFromRow(row)
            found[avatar.login] = avatar
    return found


class DatabaseGone(Exception):
    """
    The database file is no longer where the daemon was told it is.
    """


class InlineReader:
    """
    A read-only connection used in the reactor thread, for reads that can
    complete at once.

    It never waits: its busy timeout is zero, so a write lock held by
    another process fails the read with C{database is locked} at once.

    Reads share one read transaction for L{READ_SPAN} seconds from the
    first of them: SQLite then takes and releases its file lock, and the
    daemon checks which file the path names, once per span rather than
    once per read, which is most of what a read costs.  A writer is kept
    out for at most that span; once it asks for its lock, new transactions
    fail at once (and their reads take the slower path) until it is done.

    Each transaction begins by reading C{PRAGMA data_version}, which SQLite
    changes whenever another connection (of any process) commits:
    L{version} tells a cache whether what it holds may be out of date, for
    the price of one statement per span.

    Text is decoded by SQLite's own strict decoder: a row whose text is not
    UTF-8 fails its read here, and is read through the pool instead, whose
    connection shows the bad bytes as U+FFFD.  (A lenient decoder in
    Python would cost every read more than the strict one.)

    Like the pool's connection, it follows the database file: a file
    replaced is reopened, a file removed fails the reads of the next span.
    It is only ever used from the thread that created it (SQLite's own
    check enforces that).

    @ivar changes: how many times the data was seen to change (or may have:
        a file reopened counts as a change).
    """

    def __init__(self, path: str, clock: IReactorTime) -> None:
        self.path = path
        self.clock = clock
        self._connection: sqlite3.Connection | None = None
        self._openFile: tuple[int, int] | None = None
        self._cursor: sqlite3.Cursor
        self._end: IDelayedCall | None = None
        self._dataVersion: int | None = None
        self.changes = 0

    def version(self) -> int:
        """
        The data's version as of the current read transaction (begun now if
        none is open).

        @return: L{changes}: the same number for as long as no other
            connection commits and the file is not replaced.
        @raise sqlite3.Error: when SQLite fails, a lock included.
        @raise OSError: when the database file cannot be found.
        """
        if self._end is None:
            self._begin()
        return self.changes

    def lookup(self, login: str) -> Avatar | None:
        """
        Read the user of C{login}, within the current read transaction
        (begun now if none is open): what L{read} of C{_lookupOne} does,
        written out for the most frequent read of all, a lookup that missed
        the reply cache.

        @raise sqlite3.Error: when SQLite fails, a lock included.
        @raise OSError: when the database file cannot be found.
        """
        if self._end is None:
            self._begin()
        try:
            row = self._cursor.execute(SELECT_ONE, (login,)).fetchone()
        except BaseException:
            self._abort()
            raise
        return None if row is None else avatarFromRow(row)

    def read(self, query: Callable[[Any, Any], T], argument: Any) -> T:
        """
        Run C{query} on this connection's cursor, within the current read
        transaction (begun now if none is open).

        @raise sqlite3.Error: when SQLite fails, a lock included.
        @raise OSError: when the database file cannot be found.
        """
        if self._end is None:
            self._begin()
        try:
            return query(self._cursor, argument)
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        """
        End the transaction after a read failed.  A fetch that failed (on
        text that is not UTF-8, say) leaves its statement running, holding
        the file's read lock through the transaction's end: the cursor is
        closed with it, which resets the statement, and replaced.
        """
        self._cursor.close()
        if self._connection is not None:
            self._cursor = self._connection.cursor()
        self._endTransaction()

    def _begin(self) -> None:
        """
        Begin a read transaction, on the file the path names now.
        """
        status = os.stat(self.path)
        identity = (status.st_dev, status.st_ino)
        connection = self._connection
        if connection is None or identity != self._openFile:
            self.close()
            connection = sqlite3.connect(fileURI(self.path), uri=True, timeout=0, isolation_level=None)
            connection.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            self._connection, self._openFile = connection, identity
            self._cursor = connection.cursor()
            # Versions of different connections cannot be compared.
            self._dataVersion = None
        connection.execute("BEGIN")
        self._end = self.clock.callLater(READ_SPAN, self._endTransaction)
        try:
            # Takes the read lock: the version is that of what this
            # transaction's reads see.
            (dataVersion,) = connection.execute("PRAGMA data_version").fetchone()
        except BaseException:
            self._endTransaction()
            raise
        if dataVersion != self._dataVersion:
            self._dataVersion = dataVersion
            self.changes += 1

    def _endTransaction(self) -> None:
        if self._end is not None:
            if self._end.active():
                self._end.cancel()
            self._end = None
            if self._connection is not None and self._connection.in_transaction:
                self._connection.execute("ROLLBACK")

    def close(self) -> None:
        """
        Close the connection; a later L{read} opens a new one.
        """
        self._endTransaction()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@implementer(IAvatarStore, IImmediateLookup, IChangeWatch)
class SQLiteStore:
    """
    Looks avatars up in an SQLite database through a connection pool.

    Before each query the pool thread checks that the path still names the
    file its connection has open: a file replaced (by a rename, the usual
    way to publish a new database) is reopened, so the daemon serves the new
    one; a file removed fails the lookup (rather than serving what was
    deleted) until a file is back.  A file in WAL journal mode that cannot
    be read in a directory the daemon cannot write fails the lookup with a
    L{DatabaseError} that says so (see L{walProblem}), the cause the log
    then names.

    While another process holds a write lock, a query retries for up to
    C{lockTimeout} seconds, in slices of L{BUSY_SLICE}, so that it can give
    up early: when its lookup is abandoned, or when L{interrupt} is called
    at shutdown.

    A lookup whose L{Deferred} is cancelled (as a timed-out lookup is) is
    answered at once; if it has not reached the database yet, its query is
    never run, so a backlog of abandoned lookups costs no database time.

    Given the reactor as C{clock}, a lookup is first tried in the reactor
    thread through an L{InlineReader}, which never waits for a lock: an
    indexed read of a file in the page cache takes microseconds, far less
    than the hand-off to a thread and back.  A file removed fails the lookup
    at once; whatever else makes the read fail (a lock, any SQLite error)
    sends the lookup down the pool's path above, which waits for locks and
    reports errors.  The inline reader also tells a reply cache when the
    data has changed (L{version}).

    @ivar pool: the pool queries run on; its owner starts and closes it.
        Its connections must have a busy timeout of L{BUSY_SLICE}, as
        L{sqlitePool} makes them.
    @ivar connections: the connections the pool has open.
    @ivar path: the database file's path.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        connections: OpenConnections[sqlite3.Connection],
        path: str,
        lockTimeout: float = 5.0,
        clock: IReactorTime | None = None,
    ) -> None:
        self.pool = pool
        self.connections = connections
        self.path = path
        self.lockTimeout = lockTimeout
        self.inline = None if clock is None else InlineReader(path, clock)
        self._interrupted = threading.Event()
        # Only ever used from the pool's single thread.
        self._openFile: tuple[int, int] | None = None

    def interrupt(self) -> None:
        """
        Make queries that wait on a lock, or run, give up now: called when
        the daemon stops, before the pool is closed.
        """
        self._interrupted.set()
        if self.inline is not None:
            self.inline.close()
            self.inline = None
        for connection in self.connections.current():
            # A connection closed already has nothing running on it.
            with contextlib.suppress(sqlite3.ProgrammingError):
                connection.interrupt()

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        return self._run(_lookupOne, login)

    def lookupNow(self, login: str) -> Avatar | None:
        inline = self.inline
        if inline is None:
            raise WouldBlock()
        try:
            return inline.lookup(login)
        except (sqlite3.Error, OSError):
            raise WouldBlock() from None

    def version(self) -> int:
        """
        Tell whether the database may have changed, through the inline
        reader (see L{InlineReader.version}); without one (no C{clock} was
        given, or after L{interrupt}), it cannot be told.
        """
        if self.inline is None:
            raise WouldBlock()
        try:
            return self.inline.version()
        except (sqlite3.Error, OSError):
            raise WouldBlock() from None

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        return self._run(_lookupMany, list(dict.fromkeys(logins)))

    def _run(self, query: Callable[[Any, Any], T], argument: Any) -> Deferred[T]:
        if self.inline is not None:
            try:
                return succeed(self.inline.read(query, argument))
            except FileNotFoundError:
                return fail(DatabaseGone(f"{self.path} has been removed"))
            except (sqlite3.Error, OSError):
                # The pool's path waits for a lock, and reports what fails.
                pass
        return self._pooled(query, argument)

    def _pooled(self, query: Callable[[Any, Any], T], argument: Any) -> Deferred[T]:
        return abandonable(
            lambda abandoned: self.pool.runWithConnection(self._query, abandoned, query, argument)
        )

    def _query(
        self, connection: Any, abandoned: threading.Event, query: Callable[[Any, Any], T], argument: Any
    ) -> T | None:
        """
        Run in the pool's thread.
        """
        if abandoned.is_set():
            return None
        self._followFile(connection)
        deadline = time.monotonic() + self.lockTimeout
        cursor = connection.cursor()
        try:
            while True:
                try:
                    return query(cursor, argument)
                except sqlite3.OperationalError as e:
                    if not isLocked(e):
                        problem = walProblem(self.path, e)
                        if problem is not None:
                            raise DatabaseError(problem) from None
                        raise
                    if abandoned.is_set() or self._interrupted.is_set():
                        raise
                    if time.monotonic() >= deadline:
                        raise
        finally:
            cursor.close()

    def _followFile(self, connection: Any) -> None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseGone(f"{self.path} has been removed") from None
        identity = (status.st_dev, status.st_ino)
        if identity != self._openFile:
            if self._openFile is not None:
                connection.reconnect()
            self._openFile = identity


def sqlitePool(
    path: str, reactor: Any, busyTimeout: float = BUSY_SLICE
) -> tuple[ConnectionPool, OpenConnections[sqlite3.Connection]]:
    """
    Make the connection pool the daemon reads through: one thread, one
    read-only connection that never creates the file.

    @param busyTimeout: how long, in seconds, one attempt at a query waits
        for another process's write lock before it fails.
    @return: the pool, and its open connections.
    """
    connections = OpenConnections(_tolerateBadText)
    pool = connectionPool(
        "sqlite3",
        fileURI(path),
        connections=connections,
        reactor=reactor,
        threads=1,
        uri=True,
        check_same_thread=False,
        timeout=busyTimeout,
    )
    return pool, connections


def _decodeLeniently(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _tolerateBadText(connection: sqlite3.Connection) -> None:
    # A TEXT value that is not valid UTF-8 would otherwise fail the whole
    # lookup; show U+FFFD for its bad bytes instead.
    connection.text_factory = _decodeLeniently


def openStorage(path: str, reactor: Any, queryTimeout: float) -> PoolStorage:
    """
    Make what the daemon reads the SQLite file at C{path} through: a store
    that reads in the reactor thread where it can (its L{InlineReader}),
    and through a pool of one thread where it must wait; the store also
    tells when the data changes.  Its service owns the pool and, when it
    stops, makes queries still running give up (L{SQLiteStore.interrupt})
    before it closes the pool.

    @param queryTimeout: how long a lookup may take: a query gives up on a
        lock a little before, so that the log names the lock, not just the
        timeout.
    """
    pool, connections = sqlitePool(path, reactor)
    store = SQLiteStore(pool, connections, path, lockTimeout=queryTimeout * 0.8, clock=reactor)
    return PoolStorage(PoolService(pool, store.interrupt), store, store)
