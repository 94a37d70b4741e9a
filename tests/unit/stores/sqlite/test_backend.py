"""
The SQLite backend: C{DB} arguments read as SQLite files.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from avatard.stores import DatabaseError, parseDatabase
from avatard.stores.sqlite import CHECK_LOCK_TIMEOUT, SQLiteDatabase
from avatard.stores.sqlite.probe import probe
from tests.helpers import tutorialDatabase


class ParseDatabaseTests(SynchronousTestCase):
    """
    L{parseDatabase} reads C{DB} arguments.
    """

    def test_plainPathIsMadeAbsolute(self) -> None:
        """
        A relative path names a file relative to the current directory.
        """
        self.assertEqual(parseDatabase("users.sqlite"), SQLiteDatabase(os.path.abspath("users.sqlite")))

    def test_sqliteURL(self) -> None:
        """
        C{sqlite:PATH} and C{sqlite://PATH} name the same file.
        """
        self.assertEqual(parseDatabase("sqlite:/var/lib/a.db"), SQLiteDatabase("/var/lib/a.db"))
        self.assertEqual(parseDatabase("sqlite:///var/lib/a.db"), SQLiteDatabase("/var/lib/a.db"))

    def test_unsupportedScheme(self) -> None:
        """
        Another URL scheme is refused by name.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("mysql://db/users")
        self.assertIn("'mysql'", str(raised.exception))

    def test_empty(self) -> None:
        """
        An empty name is refused.
        """
        for text in ("", "sqlite:"):
            with self.assertRaises(DatabaseError):
                parseDatabase(text)

    def test_uriQuotesThePath(self) -> None:
        """
        A path with URI syntax in it (C{?}, C{#}, C{%}, spaces) still opens
        that file.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        path = tutorialDatabase(os.path.join(directory, "odd ?name#%20.sqlite"))
        probe(path, CHECK_LOCK_TIMEOUT)
        self.assertEqual(sorted(os.listdir(directory)), ["odd ?name#%20.sqlite"])
