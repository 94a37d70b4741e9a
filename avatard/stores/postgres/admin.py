"""
The admin command's operations on a PostgreSQL database.

Each command is one connection and one transaction.  Import sends its rows
with C{COPY} into a temporary table and merges them with one statement, so
a million rows take seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from importlib.resources import files
from typing import Any

import psycopg
from psycopg import sql
from zope.interface import implementer

from avatard.interfaces import IAdmin
from avatard.model import COLUMNS, SELECT_COLUMNS, UPDATE_FIELDS, Avatar, avatarFromRow
from avatard.stores.base import AdminError, counted
from avatard.stores.postgres.store import SELECT_ONE, firstLine

CONNECT_TIMEOUT = 10
"""
Seconds a command waits for the server to accept its connection.
"""

LIST_BATCH = 5000

_TEXT_COLUMNS = ", ".join(f"{column} text" for column in COLUMNS)
_INSERT = f"INSERT INTO users ({SELECT_COLUMNS}) VALUES (%s, %s, %s)"  # noqa: S608
_COPY = sql.SQL(f"COPY avatard_import ({SELECT_COLUMNS}) FROM STDIN")
# xmax is 0 in a row version that an insert made, and not in one that an
# update made.
_MERGE = (
    "WITH merged AS ("  # noqa: S608 (only the column lists are formatted in)
    f" INSERT INTO users ({SELECT_COLUMNS})"
    f" SELECT {SELECT_COLUMNS} FROM avatard_import"
    f" ON CONFLICT (login) DO UPDATE SET {UPDATE_FIELDS}"
    " RETURNING xmax = 0 AS added)"
    " SELECT count(*) FILTER (WHERE added), count(*) FILTER (WHERE NOT added) FROM merged"
)


def _schema() -> str:
    return files("avatard.stores.postgres").joinpath("schema.sql").read_text(encoding="utf-8")


@contextlib.contextmanager
def _connected(url: str, name: str, needTable: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """
    Connect, and run a block in one transaction: committed when it ends,
    rolled back if it raises.  Every driver error becomes an L{AdminError}
    naming the database (C{name}, its password redacted).
    """
    try:
        connection = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as e:
        raise AdminError(f"cannot connect to {name}: {firstLine(e)}") from None
    try:
        with connection.transaction():
            if needTable:
                (found,) = connection.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() or (
                    False,
                )
                if not found:
                    raise AdminError(
                        f"database {name} has no users table (create it with: avatard init {name})"
                    )
            yield connection
    except psycopg.Error as e:
        raise AdminError(f"cannot use {name}: {firstLine(e)}") from None
    finally:
        connection.close()


@implementer(IAdmin)
class PostgresAdmin:
    """
    The admin command's operations on the PostgreSQL database at C{url},
    named C{name} in messages (its password redacted).
    """

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name

    def init(self, demo: Sequence[Avatar]) -> str:
        """
        Create the C{users} table, with its change notification trigger,
        if it is missing, in the database, which must exist (in the first
        schema of the connection's C{search_path}).
        """
        demoRows = [(a.login, a.name, a.forname) for a in demo]
        with _connected(self.url, self.name, needTable=False) as connection:
            # Two inits at once wait for each other here, not on the catalog.
            connection.execute("SELECT pg_advisory_xact_lock(hashtext('avatard init'))")
            (existed,) = connection.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() or (False,)
            connection.execute(_schema())
            added = 0
            if demoRows:
                with connection.cursor() as cursor:
                    for row in demoRows:
                        cursor.execute(_INSERT + " ON CONFLICT (login) DO NOTHING", row)
                        added += cursor.rowcount
        if existed:
            return f"{self.name} is ready" + (f"; {counted(added, 'demo user')} added" if demo else "")
        return f"created the users table in {self.name}" + (
            f" with {counted(added, 'demo user')}" if demo else ""
        )

    def add(self, avatar: Avatar) -> None:
        with _connected(self.url, self.name) as connection:
            try:
                with connection.transaction():
                    connection.execute(_INSERT, (avatar.login, avatar.name, avatar.forname))
            except psycopg.errors.UniqueViolation:
                raise AdminError(f"login {avatar.login!r} already exists in {self.name}") from None

    def remove(self, login: str) -> None:
        with _connected(self.url, self.name) as connection:
            if connection.execute("DELETE FROM users WHERE login = %s", (login,)).rowcount == 0:
                raise AdminError(f"no login {login!r} in {self.name}")

    def show(self, login: str) -> Avatar:
        with _connected(self.url, self.name) as connection:
            row = connection.execute(SELECT_ONE, (login,)).fetchone()
        if row is None:
            raise AdminError(f"no login {login!r} in {self.name}")
        return avatarFromRow(row)

    def list(self) -> Iterator[list[Avatar]]:
        """
        Read every user through a server-side cursor, a batch at a time.
        After the first batch, what can still fail is the reading of a
        later one: a connection lost or a transaction ended by the server
        (a restart, C{pg_terminate_backend}, an
        C{idle_in_transaction_session_timeout} while the reader is slow).
        """
        with _connected(self.url, self.name) as connection, connection.cursor(name="avatard_list") as cursor:
            cursor.execute(f'SELECT {SELECT_COLUMNS} FROM users ORDER BY login COLLATE "C"')  # noqa: S608
            while rows := cursor.fetchmany(LIST_BATCH):
                yield [avatarFromRow(row) for row in rows]

    def importUsers(self, avatars: Iterable[Avatar]) -> tuple[int, int]:
        """
        Send the users with C{COPY} into a temporary table, then merge them
        into C{users} with one C{INSERT ... ON CONFLICT}.
        """
        with _connected(self.url, self.name) as connection:
            connection.execute(f"CREATE TEMPORARY TABLE avatard_import ({_TEXT_COLUMNS}) ON COMMIT DROP")
            with connection.cursor() as cursor:
                with cursor.copy(_COPY) as copy:
                    for avatar in avatars:
                        copy.write_row((avatar.login, avatar.name, avatar.forname))
                cursor.execute(_MERGE)
                added, updated = cursor.fetchone() or (0, 0)
        return int(added), int(updated)
