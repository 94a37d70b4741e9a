"""
The PostgreSQL backend's reading of C{postgresql://} URLs, and what it
says of them, with no server involved.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IDatabase
from avatard.stores import DatabaseError, parseDatabase
from avatard.stores import postgres as postgresBackend
from avatard.stores.postgres import POSTGRES_EXTRA, redactPassword
from avatard.stores.postgres.store import (
    TCP_USER_TIMEOUT_MS,
    connectArguments,
)


class ParseTests(SynchronousTestCase):
    """
    L{parseDatabase} on C{postgresql://} URLs.
    """

    def test_postgresqlURL(self) -> None:
        """
        A C{postgresql://} or C{postgres://} URL, in any case, names a
        PostgreSQL database, kept as given.
        """
        for url in (
            "postgresql://u@db.example:5433/users?sslmode=require",
            "postgres://u@h/d",
            "PostgreSQL://h/d",
        ):
            database = parseDatabase(url)
            self.assertTrue(verifyObject(IDatabase, database))
            self.assertEqual((database.backend.name, database.describe()), ("postgresql", url))

    def test_passwordIsRedacted(self) -> None:
        """
        C{describe()} and C{repr()} never show the password.
        """
        database = parseDatabase("postgresql://avatard:s3cret@db:5432/users?sslmode=require")
        self.assertEqual(database.describe(), "postgresql://avatard:***@db:5432/users?sslmode=require")
        self.assertNotIn("s3cret", repr(database))
        self.assertEqual(redactPassword("postgresql://avatard@db/users"), "postgresql://avatard@db/users")

    def test_noDatabaseName(self) -> None:
        """
        A URL without a database name is refused, with an example.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("postgresql://u:pw@host:5432/")
        self.assertEqual(
            str(raised.exception),
            "the PostgreSQL URL postgresql://u:***@host:5432/ names no database, "
            "as in postgresql://user@host:5432/dbname",
        )

    def test_badPort(self) -> None:
        """
        A port that is not a number is refused, the password redacted.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("postgresql://u:pw@host:port/db")
        self.assertIn("cannot read the PostgreSQL URL postgresql://u:***@host:port/db", str(raised.exception))

    def test_driverMissing(self) -> None:
        """
        Without the driver, a PostgreSQL URL says which extra to install.
        """
        self.patch(postgresBackend, "driverInstalled", lambda: False)
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("postgresql://u@h/d")
        self.assertEqual(str(raised.exception), POSTGRES_EXTRA)

    def test_connectArgumentsKeepTheURLs(self) -> None:
        """
        The daemon's connections get a connect timeout derived from the
        query timeout and a TCP user timeout, unless the URL sets its own.
        """
        self.assertEqual(
            connectArguments("postgresql://u@h/d", 0.5),
            {
                "autocommit": True,
                "connect_timeout": 2,
                "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                "application_name": "avatard",
            },
        )
        given = "postgresql://u@h/d?connect_timeout=9&tcp_user_timeout=1&application_name=x"
        self.assertEqual(connectArguments(given, 5.5), {"autocommit": True})
        self.assertEqual(connectArguments("postgresql://u@h/d", 5.5)["connect_timeout"], 6)
