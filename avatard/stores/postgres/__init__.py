"""
The PostgreSQL backend: many avatard nodes sharing one database server,
named by C{postgresql://} (or C{postgres://}) libpq URLs.

The driver, psycopg 3, is an optional dependency (the C{postgres} extra):
this module does not import it, so that the registry works without it.
The modules that check and read (L{avatard.stores.postgres.store}), listen
(L{avatard.stores.postgres.notify}) and administer
(L{avatard.stores.postgres.admin}) a database import it, when one is.
"""

from __future__ import annotations

import importlib.util
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twisted.logger import Logger
from zope.interface import implementer

from avatard.interfaces import IAdmin, IBackend, IDatabase, IStorage
from avatard.stores.base import DatabaseError

POSTGRES_EXTRA = "PostgreSQL support is not installed: pip install 'avatard[postgres]'"

# The namespace the daemon's PostgreSQL lines have always been logged under.
_log = Logger(namespace="avatard.postgres")


def redactPassword(url: str) -> str:
    """
    @return: C{url} with the password of its user part, if it has one,
        replaced by C{***}.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" not in netloc:
        return url
    user, host = netloc.rsplit("@", 1)
    if ":" not in user:
        return url
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def driverInstalled() -> bool:
    """
    @return: whether psycopg can be imported; it is not imported here.
    """
    return importlib.util.find_spec("psycopg") is not None


@implementer(IBackend)
class PostgresBackend:
    """
    Reads C{postgresql://user[:password]@host[:port]/dbname[?params]} URLs
    (or C{postgres://}), with libpq's parameters and defaults
    (C{PGPASSWORD}, C{~/.pgpass}, ...).
    """

    name = "postgresql"
    schemes = ("postgresql", "postgres")

    def parse(self, locator: str) -> PostgresDatabase:
        """
        @raise DatabaseError: for a URL that cannot be read or names no
            database, or when psycopg is not installed.
        """
        scheme = locator.split(":", 1)[0]
        if "://" not in locator:
            raise DatabaseError(
                f"a PostgreSQL URL starts with {scheme}://, as in postgresql://user@host:5432/dbname"
            )
        try:
            parts = urlsplit(locator)
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError as e:
            raise DatabaseError(f"cannot read the PostgreSQL URL {redactPassword(locator)}: {e}") from None
        if parts.fragment:
            raise DatabaseError("a PostgreSQL URL has no #fragment")
        if not parts.path.strip("/"):
            raise DatabaseError(
                f"the PostgreSQL URL {redactPassword(locator)} names no database, "
                "as in postgresql://user@host:5432/dbname"
            )
        if not driverInstalled():
            raise DatabaseError(POSTGRES_EXTRA)
        return PostgresDatabase(locator)


BACKEND = PostgresBackend()
"""
The PostgreSQL backend, as L{avatard.stores} registers it.
"""


@implementer(IDatabase)
class PostgresDatabase:
    """
    A PostgreSQL database, named by a libpq connection URL.

    @ivar url: the URL as given, password included: it is handed to the
        driver and nowhere else.  Its C{repr} leaves the password out.
    """

    backend = BACKEND

    def __init__(self, url: str) -> None:
        self.url = url
        # What check() found: why the database sends no change
        # notifications, or None when it does or could not be asked.
        self._silent: str | None = None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.describe()!r})"

    def describe(self) -> str:
        """
        @return: the URL with any password replaced by C{***}.
        """
        return redactPassword(self.url)

    def check(self, queryTimeout: float) -> None:
        """
        Check that the database has a usable C{users} table, and whether it
        sends change notifications (see
        L{avatard.stores.postgres.store.probe}), within a connect timeout
        derived from C{queryTimeout}.

        A server that cannot be reached is not an error: the daemon starts
        anyway, answers C{ERR unavailable} and connects once the server is
        up; a warning says so.  A password in the URL is warned about; a
        database that sends no change notifications is logged, and L{open}
        then caches replies for a bounded time.
        """
        from avatard.stores.postgres.store import probe

        name = self.describe()
        unreachable, silent = probe(self.url, name, queryTimeout)
        if unreachable is not None:
            _log.warn(
                "Cannot reach {database} ({cause}): starting anyway, answering ERR unavailable "
                "until it answers",
                database=name,
                cause=unreachable,
            )
        if name != self.url:
            _log.warn(
                "The --db URL holds a password, which every local user can read in the process list: "
                "give it in ~/.pgpass or PGPASSWORD instead"
            )
        if silent is not None:
            _log.info(
                "No change notifications from {database} ({cause}): cached replies are used for at "
                "most --cache-ttl seconds",
                database=name,
                cause=silent,
            )
        self._silent = silent

    def open(self, reactor: Any, queryTimeout: float) -> IStorage:
        """
        @return: the storage of L{avatard.stores.postgres.store.openStorage},
            which listens for change notifications unless L{check} found
            that the database sends none.
        """
        from avatard.stores.postgres.store import openStorage

        return openStorage(self.url, self.describe(), reactor, queryTimeout, listen=self._silent is None)

    def admin(self) -> IAdmin:
        from avatard.stores.postgres.admin import PostgresAdmin

        return PostgresAdmin(self.url, self.describe())
