"""
Where a database lives: the one place that reads a C{DB} argument.

The daemon's C{--db} option and every admin command take the same text and
hand it to L{parseDatabase}.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit


class DatabaseError(Exception):
    """
    The database cannot be used.  C{str()} of it is one sentence meant for
    the person who named the database, without a traceback.
    """


@dataclass(frozen=True)
class SQLiteDatabase:
    """
    An SQLite database file.

    @ivar path: the file's absolute path.
    """

    path: str

    def describe(self) -> str:
        """
        @return: how logs and messages name this database.
        """
        return f"sqlite:{self.path}"

    def uri(self, mode: str = "ro") -> str:
        """
        @param mode: C{ro} (read-only) or C{rw} (read-write).
        @return: an SQLite C{file:} URI that opens this file in C{mode} and
            never creates it.
        """
        return f"file:{quote(self.path)}?mode={mode}"


@dataclass(frozen=True)
class PostgresDatabase:
    """
    A PostgreSQL database, named by a libpq connection URL.

    @ivar url: the URL as given, password included: it is handed to the
        driver and nowhere else.  Its C{repr} leaves it out.
    """

    url: str = field(repr=False)

    def describe(self) -> str:
        """
        @return: how logs and messages name this database: the URL with any
            password replaced by C{***}.
        """
        return redactPassword(self.url)


Database = SQLiteDatabase | PostgresDatabase
"""
Any database avatard can serve.
"""

POSTGRES_SCHEMES = ("postgresql", "postgres")

POSTGRES_EXTRA = "PostgreSQL support is not installed: pip install 'avatard[postgres]'"


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


def _postgresDriverInstalled() -> bool:
    return importlib.util.find_spec("psycopg") is not None


def _parsePostgres(text: str) -> PostgresDatabase:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as e:
        raise DatabaseError(f"cannot read the PostgreSQL URL {redactPassword(text)}: {e}") from None
    if parts.fragment:
        raise DatabaseError("a PostgreSQL URL has no #fragment")
    if not parts.path.strip("/"):
        raise DatabaseError(
            f"the PostgreSQL URL {redactPassword(text)} names no database, "
            "as in postgresql://user@host:5432/dbname"
        )
    if not _postgresDriverInstalled():
        raise DatabaseError(POSTGRES_EXTRA)
    return PostgresDatabase(text)


def parseDatabase(text: str) -> Database:
    """
    Read a C{DB} argument.

    A plain path, or a C{sqlite:PATH} URL, names an SQLite file; a
    C{postgresql://user[:password]@host[:port]/dbname[?params]} URL (or
    C{postgres://}) names a PostgreSQL database, with libpq's parameters and
    defaults (C{PGPASSWORD}, C{~/.pgpass}, ...).

    @raise DatabaseError: when C{text} names nothing avatard can use, or
        PostgreSQL support is not installed.
    """
    if not text:
        raise DatabaseError("the database name is empty")
    if text.split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in text:
        return _parsePostgres(text)
    if text.startswith("sqlite:"):
        text = text[len("sqlite:") :]
        if text.startswith("//"):
            text = text[2:]
        if not text:
            raise DatabaseError("sqlite: needs a path, as in sqlite:/var/lib/avatard/users.sqlite")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise DatabaseError(
            f"unsupported database URL scheme {scheme!r}: give an SQLite file path or a postgresql:// URL"
        )
    return SQLiteDatabase(os.path.abspath(os.path.expanduser(text)))
