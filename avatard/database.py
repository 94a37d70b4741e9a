"""
Where a database lives: the one place that reads a C{DB} argument.

The daemon's C{--db} option and every admin command take the same text and
hand it to L{parseDatabase}.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote


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


def parseDatabase(text: str) -> SQLiteDatabase:
    """
    Read a C{DB} argument.

    A plain path, or a C{sqlite:PATH} URL, names an SQLite file.

    @raise DatabaseError: when C{text} names nothing avatard can use.
    """
    if not text:
        raise DatabaseError("the database name is empty")
    if text.startswith("sqlite:"):
        text = text[len("sqlite:") :]
        if text.startswith("//"):
            text = text[2:]
        if not text:
            raise DatabaseError("sqlite: needs a path, as in sqlite:/var/lib/avatard/users.sqlite")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise DatabaseError(f"unsupported database URL scheme {scheme!r}: give a path to an SQLite file")
    return SQLiteDatabase(os.path.abspath(os.path.expanduser(text)))
