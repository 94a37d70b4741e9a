"""
The SQLite backend: the embedded default, serving plain paths and
C{sqlite:PATH} (or C{sqlite://PATH}).

This module imports no driver: C{sqlite3} is imported by the modules that
check (L{avatard.stores.sqlite.probe}), read
(L{avatard.stores.sqlite.store}) and administer
(L{avatard.stores.sqlite.admin}) a database, when one is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from avatard.interfaces import IAdmin, IBackend, IDatabase, IStorage
from avatard.stores.base import DatabaseError

CHECK_LOCK_TIMEOUT = 5.0
"""
How long, in seconds, the daemon's start-up check waits for another
process's write lock before it gives up.
"""


@implementer(IBackend)
class SQLiteBackend:
    """
    Reads SQLite locators: a path, or C{sqlite:} then a path.
    """

    name = "sqlite"
    schemes = ("", "sqlite")

    def parse(self, locator: str) -> SQLiteDatabase:
        """
        @return: the database file C{locator} names, its path made absolute
            (C{~} expanded).
        @raise DatabaseError: for C{sqlite:} without a path.
        """
        scheme, colon, rest = locator.partition(":")
        path = locator
        if colon and scheme.lower() == "sqlite":
            path = rest[2:] if rest.startswith("//") else rest
            if not path:
                raise DatabaseError("sqlite: needs a path, as in sqlite:/var/lib/avatard/users.sqlite")
        return SQLiteDatabase(os.path.abspath(os.path.expanduser(path)))


BACKEND = SQLiteBackend()
"""
The SQLite backend, as L{avatard.stores} registers it.
"""


@implementer(IDatabase)
@dataclass(frozen=True)
class SQLiteDatabase:
    """
    An SQLite database file.

    @ivar path: the file's absolute path.
    """

    path: str

    @property
    def backend(self) -> SQLiteBackend:
        return BACKEND

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def check(self, queryTimeout: float) -> None:
        """
        Check that the file is an SQLite database with a usable C{users}
        table that this process can read (see
        L{avatard.stores.sqlite.probe.probe}), waiting up to
        L{CHECK_LOCK_TIMEOUT} seconds for another process's write lock.
        """
        from avatard.stores.sqlite.probe import probe

        probe(self.path, CHECK_LOCK_TIMEOUT)

    def open(self, reactor: Any, queryTimeout: float) -> IStorage:
        """
        @return: the storage of L{avatard.stores.sqlite.store.openStorage}.
        """
        from avatard.stores.sqlite.store import openStorage

        return openStorage(self.path, reactor, queryTimeout)

    def admin(self) -> IAdmin:
        from avatard.stores.sqlite.admin import SQLiteAdmin

        return SQLiteAdmin(self.path)
