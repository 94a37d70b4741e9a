"""
The databases the shared tests run on: an SQLite file, or a schema of its
own on a PostgreSQL server.

Tests that need PostgreSQL read the server's URL from C{AVATARD_TEST_PG}
(by default C{postgresql://postgres@127.0.0.1:5432/test}).  Where no server
answers there, they are skipped, naming the reason; with
C{AVATARD_PG_REQUIRED=1} (as C{.ci/run} sets it) they fail instead.  Each
test works in a schema of its own, with a unique name, dropped afterwards:
many test runs can share one server.
"""

from __future__ import annotations

import os
import sqlite3
import unittest
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from avatard.stores import parseDatabase
from avatard.stores.sqlite import SQLiteDatabase
from tests.helpers import TUTORIAL_USERS, tutorialDatabase

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    _TestCase = SynchronousTestCase
else:
    _TestCase = object

PG_URL_VARIABLE = "AVATARD_TEST_PG"
PG_REQUIRED_VARIABLE = "AVATARD_PG_REQUIRED"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

TUTORIAL_TABLE = "CREATE TABLE users (login text unique, name text, forname text)"

_unavailable: list[str | None] = []


def serverURL() -> str:
    """
    @return: the URL of the PostgreSQL server the tests use.
    """
    return os.environ.get(PG_URL_VARIABLE) or DEFAULT_PG_URL


def postgresRequired() -> bool:
    """
    @return: whether tests that need PostgreSQL fail, rather than skip,
        where no server answers.
    """
    return os.environ.get(PG_REQUIRED_VARIABLE, "") not in ("", "0")


def _whyUnavailable() -> str | None:
    if not _unavailable:
        reason: str | None = None
        try:
            import psycopg
        except ImportError:
            reason = "psycopg is not installed (pip install '.[postgres]')"
        else:
            try:
                psycopg.connect(serverURL(), connect_timeout=3).close()
            except psycopg.Error as e:
                detail = str(e).strip().splitlines()[0]
                reason = f"no PostgreSQL server answers at {PG_URL_VARIABLE}={serverURL()}: {detail}"
        _unavailable.append(reason)
    return _unavailable[0]


def requirePostgres() -> None:
    """
    Skip the calling test where no PostgreSQL server answers, or fail it
    when C{AVATARD_PG_REQUIRED} is set.
    """
    reason = _whyUnavailable()
    if reason is None:
        return
    if postgresRequired():
        raise AssertionError(f"{reason} (and {PG_REQUIRED_VARIABLE} is set)")
    raise unittest.SkipTest(reason)


def withSearchPath(url: str, schema: str) -> str:
    """
    @return: C{url} with libpq C{options} that make C{schema} the only
        schema searched.
    """
    options = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={options}"


def connectPostgres(url: str) -> Any:
    """
    @return: an autocommit psycopg connection to C{url}.
    """
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def createSchema(url: str) -> tuple[str, str]:
    """
    Create a schema with a unique name on the server at C{url}.

    @return: its name, and C{url} restricted to it.
    """
    schema = f"avatard_test_{uuid.uuid4().hex[:12]}"
    with connectPostgres(url) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    return schema, withSearchPath(url, schema)


def dropSchema(url: str, schema: str) -> None:
    """
    Drop a schema made by L{createSchema}, with everything in it.
    """
    with connectPostgres(url) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class SQLiteBackend(_TestCase):
    """
    Shared tests on an SQLite file in the test's own directory.
    """

    backend = "sqlite"

    def newDatabase(self) -> str:
        """
        @return: the C{DB} argument of a database not created yet.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return os.path.join(directory, "users.sqlite")

    def tutorialDatabase(self, users: Iterable[tuple[Any, ...]] = TUTORIAL_USERS) -> str:
        """
        @return: the C{DB} argument of a database made as the original
            tutorial made it, with C{users}.
        """
        return tutorialDatabase(self.newDatabase(), users)

    def rows(self, db: str) -> list[tuple[str, str, str]]:
        connection = sqlite3.connect(db)
        try:
            return connection.execute("SELECT login, name, forname FROM users ORDER BY login").fetchall()
        finally:
            connection.close()

    def insertRows(self, db: str, rows: Iterable[tuple[Any, ...]]) -> None:
        connection = sqlite3.connect(db)
        connection.executemany("INSERT INTO users VALUES (?, ?, ?)", list(rows))
        connection.commit()
        connection.close()

    def describe(self, db: str) -> str:
        """
        @return: how messages name the database C{db}: its path.
        """
        database = parseDatabase(db)
        assert isinstance(database, SQLiteDatabase)
        return database.path


class PostgresBackend(_TestCase):
    """
    Shared tests on a schema of their own on the PostgreSQL server.
    """

    backend = "postgresql"

    def newDatabase(self) -> str:
        requirePostgres()
        schema, url = createSchema(serverURL())
        self.addCleanup(dropSchema, serverURL(), schema)
        return url

    def tutorialDatabase(self, users: Iterable[tuple[Any, ...]] = TUTORIAL_USERS) -> str:
        db = self.newDatabase()
        with connectPostgres(db) as connection:
            connection.execute(TUTORIAL_TABLE)
        self.insertRows(db, users)
        return db

    def rows(self, db: str) -> list[tuple[str, str, str]]:
        with connectPostgres(db) as connection:
            query = 'SELECT login, name, forname FROM users ORDER BY login COLLATE "C"'
            return [tuple(row) for row in connection.execute(query)]

    def insertRows(self, db: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with connectPostgres(db) as connection, connection.cursor() as cursor:
            cursor.executemany("INSERT INTO users VALUES (%s, %s, %s)", list(rows))

    def describe(self, db: str) -> str:
        """
        @return: how messages name the database C{db}: its URL, password
            redacted.
        """
        return parseDatabase(db).describe()
