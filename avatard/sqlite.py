"""
The SQLite store: the embedded default.

The daemon reads through one C{twisted.enterprise.adbapi} connection opened
read-only.  SQLite serialises access to one file anyway, so more threads
would only add hand-offs and lock contention; C{check_same_thread=False}
lets the pool close the connection from the reactor thread at shutdown.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from zope.interface import implementer

from avatard.avatar import Avatar
from avatard.database import DatabaseError, SQLiteDatabase
from avatard.interfaces import IAvatarStore

SELECT_ONE = "SELECT login, name, forname FROM users WHERE login = ?"

POOL_NAME = "avatard-db"
"""
The name of the database thread pool: its threads are C{PoolThread-avatard-db-N}.
"""

# Far below SQLITE_MAX_VARIABLE_NUMBER on every SQLite still in use (999 on
# the oldest).
IN_CHUNK = 500


def avatarFromRow(row: Sequence[Any]) -> Avatar:
    """
    Build an L{Avatar} from a C{(login, name, forname)} row.

    The original schema allows C{NULL} names; they render as empty text.
    """
    login, name, forname = row
    return Avatar(
        str(login),
        "" if name is None else str(name),
        "" if forname is None else str(forname),
    )


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
        cursor.execute(f"SELECT login, name, forname FROM users WHERE login IN ({marks})", chunk)  # noqa: S608
        for row in cursor.fetchall():
            avatar = avatarFromRow(row)
            found[avatar.login] = avatar
    return found


@implementer(IAvatarStore)
class SQLiteStore:
    """
    Looks avatars up in an SQLite database through a connection pool.

    @ivar pool: the pool queries run on; its owner starts and closes it.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        d: Deferred[Avatar | None] = self.pool.runInteraction(_lookupOne, login)
        return d

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        d: Deferred[Mapping[str, Avatar]] = self.pool.runInteraction(_lookupMany, list(dict.fromkeys(logins)))
        return d


def sqlitePool(database: SQLiteDatabase, reactor: Any, busyTimeout: float = 5.0) -> ConnectionPool:
    """
    Make the connection pool the daemon reads through: one thread, one
    read-only connection that never creates the file.

    @param busyTimeout: how long, in seconds, a query waits for another
        process's write lock before it fails.
    """
    pool = ConnectionPool(
        "sqlite3",
        database.uri(),
        uri=True,
        check_same_thread=False,
        timeout=busyTimeout,
        cp_min=1,
        cp_max=1,
        cp_noisy=False,
        cp_reactor=reactor,
        cp_openfun=_tolerateBadText,
    )
    pool.threadpool.name = POOL_NAME
    return pool


def _decodeLeniently(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _tolerateBadText(connection: sqlite3.Connection) -> None:
    # A TEXT value that is not valid UTF-8 would otherwise fail the whole
    # lookup; show U+FFFD for its bad bytes instead.
    connection.text_factory = _decodeLeniently


def probe(database: SQLiteDatabase) -> None:
    """
    Check, before the daemon starts, that C{database} is an SQLite file with
    a usable C{users} table.  Opens it read-only: never creates or changes
    anything.

    @raise DatabaseError: naming the problem, when it is not usable.
    """
    path = database.path
    if not os.path.exists(path):
        raise DatabaseError(f"database {path} does not exist (create it with: avatard init {path})")
    if not os.path.isfile(path):
        raise DatabaseError(f"database {path} is not a regular file")
    try:
        connection = sqlite3.connect(database.uri(), uri=True)
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot open database {path}: {e}") from None
    try:
        connection.execute("SELECT login, name, forname FROM users LIMIT 0").fetchall()
    except sqlite3.OperationalError as e:
        message = str(e)
        if message.startswith("no such table"):
            raise DatabaseError(
                f"database {path} has no users table (create it with: avatard init {path})"
            ) from None
        if message.startswith("no such column"):
            raise DatabaseError(f"the users table in {path} lacks a column: {message}") from None
        raise DatabaseError(f"cannot read database {path}: {message}") from None
    except sqlite3.DatabaseError as e:
        raise DatabaseError(f"{path} is not an SQLite database ({e})") from None
    finally:
        connection.close()
