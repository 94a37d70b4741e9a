"""
The admin commands on PostgreSQL: what L{avatard.admin} does for a
C{postgresql://} database.

Each command is one connection and one transaction.  Import sends its rows
with C{COPY} into a temporary table and merges them with one statement, so
a million rows take seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from importlib.resources import files
from typing import Any

import psycopg
from psycopg import sql

from avatard.database import PostgresDatabase
from avatard.model import SELECT_COLUMNS, Avatar, avatarFromRow
from avatard.postgres import SELECT_ONE, firstLine

CONNECT_TIMEOUT = 10
"""
Seconds a command waits for the server to accept its connection.
"""

LIST_BATCH = 5000


class PostgresAdminError(Exception):
    """
    A command cannot be done; C{str()} of it is the one line to show.
    """


def _schema() -> str:
    return files("avatard").joinpath("schema/postgresql.sql").read_text(encoding="utf-8")


@contextlib.contextmanager
def _connected(database: PostgresDatabase, needTable: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """
    Connect, and run a block in one transaction: committed when it ends,
    rolled back if it raises.  Every driver error becomes a
    L{PostgresAdminError} naming the database (its password redacted).
    """
    name = database.describe()
    try:
        connection = psycopg.connect(database.url, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as e:
        raise PostgresAdminError(f"cannot connect to {name}: {firstLine(e)}") from None
    try:
        with connection.transaction():
            if needTable:
                (found,) = connection.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() or (
                    False,
                )
                if not found:
                    raise PostgresAdminError(
                        f"database {name} has no users table (create it with: avatard init {name})"
                    )
            yield connection
    except psycopg.Error as e:
        raise PostgresAdminError(f"cannot use {name}: {firstLine(e)}") from None
    finally:
        connection.close()


def initDatabase(database: PostgresDatabase, demo: Iterable[Avatar]) -> tuple[bool, int]:
    """
    Create the C{users} table if it is missing, and add the users of
    C{demo} that are missing.  Users already there are left untouched.

    @return: whether the table existed already, and how many users of
        C{demo} were added.
    """
    demoRows = [(a.login, a.name, a.forname) for a in demo]
    with _connected(database, needTable=False) as connection:
        # Two inits at once wait for each other here, not on the catalog.
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('avatard init'))")
        (existed,) = connection.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() or (False,)
        connection.execute(_schema())
        added = 0
        if demoRows:
            with connection.cursor() as cursor:
                for row in demoRows:
                    cursor.execute(
                        "INSERT INTO users (login, name, forname) VALUES (%s, %s, %s) "
                        "ON CONFLICT (login) DO NOTHING",
                        row,
                    )
                    added += cursor.rowcount
    return bool(existed), added


def addUser(database: PostgresDatabase, avatar: Avatar) -> None:
    """
    Add one user.

    @raise PostgresAdminError: if the login is taken.
    """
    with _connected(database) as connection:
        try:
            with connection.transaction():
                connection.execute(
                    "INSERT INTO users (login, name, forname) VALUES (%s, %s, %s)",
                    (avatar.login, avatar.name, avatar.forname),
                )
        except psycopg.errors.UniqueViolation:
            raise PostgresAdminError(
                f"login {avatar.login!r} already exists in {database.describe()}"
            ) from None


def removeUser(database: PostgresDatabase, login: str) -> None:
    """
    Remove one user.

    @raise PostgresAdminError: if there is no such login.
    """
    with _connected(database) as connection:
        if connection.execute("DELETE FROM users WHERE login = %s", (login,)).rowcount == 0:
            raise PostgresAdminError(f"no login {login!r} in {database.describe()}")


def showUser(database: PostgresDatabase, login: str) -> Avatar:
    """
    @return: the user with that login.
    @raise PostgresAdminError: if there is none.
    """
    with _connected(database) as connection:
        row = connection.execute(SELECT_ONE, (login,)).fetchone()
    if row is None:
        raise PostgresAdminError(f"no login {login!r} in {database.describe()}")
    return avatarFromRow(row)


def listUsers(database: PostgresDatabase) -> Iterator[list[Avatar]]:
    """
    Read every user, ordered by login, through a server-side cursor, a
    batch at a time: memory stays bounded whatever the number of users.
    Everything but the fetching of later batches happens before the first
    batch is yielded (see L{avatard.admin.listUsers}).

    @return: the users, in batches that are never empty.
    """
    with _connected(database) as connection, connection.cursor(name="avatard_list") as cursor:
        cursor.execute(f'SELECT {SELECT_COLUMNS} FROM users ORDER BY login COLLATE "C"')  # noqa: S608
        while rows := cursor.fetchmany(LIST_BATCH):
            yield [avatarFromRow(row) for row in rows]


def importUsers(database: PostgresDatabase, avatars: Iterable[Avatar]) -> tuple[int, int]:
    """
    Add or update users, all in one transaction: C{COPY} into a temporary
    table, then one C{INSERT ... ON CONFLICT} into C{users}.

    @return: how many users were added, and how many updated.
    """
    with _connected(database) as connection:
        connection.execute(
            "CREATE TEMPORARY TABLE avatard_import (login text, name text, forname text) ON COMMIT DROP"
        )
        with connection.cursor() as cursor:
            with cursor.copy(sql.SQL("COPY avatard_import (login, name, forname) FROM STDIN")) as copy:
                for avatar in avatars:
                    copy.write_row((avatar.login, avatar.name, avatar.forname))
            # xmax is 0 in a row version that an insert made, and not in
            # one that an update made.
            cursor.execute(
                "WITH merged AS ("
                " INSERT INTO users (login, name, forname)"
                " SELECT login, name, forname FROM avatard_import"
                " ON CONFLICT (login) DO UPDATE SET name = excluded.name, forname = excluded.forname"
                " RETURNING xmax = 0 AS added)"
                " SELECT count(*) FILTER (WHERE added), count(*) FILTER (WHERE NOT added) FROM merged"
            )
            added, updated = cursor.fetchone() or (0, 0)
    return int(added), int(updated)
