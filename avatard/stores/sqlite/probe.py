"""
What the SQLite backend knows of a database file before it reads it: how
to open it without creating it, whether it is usable, and why a read of a
file in WAL journal mode failed.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from urllib.parse import quote

from avatard.model import SELECT_COLUMNS
from avatard.stores.base import DatabaseError

_HEADER = b"SQLite format 3\x00"


def fileURI(path: str, mode: str = "ro") -> str:
    """
    @param mode: C{ro} (read-only) or C{rw} (read-write).
    @return: an SQLite C{file:} URI that opens the file at C{path} in
        C{mode} and never creates it, whatever characters the path holds.
    """
    return f"file:{quote(path)}?mode={mode}"


def isLocked(error: sqlite3.OperationalError) -> bool:
    """
    @return: whether C{error} says that another connection holds a lock.
    """
    return str(error).startswith(("database is locked", "database table is locked"))


def inWALMode(path: str) -> bool:
    """
    Tell, from its header, whether the file at C{path} is an SQLite
    database in WAL journal mode: the file format's write and read versions
    (bytes 18 and 19) are 2 in WAL mode, 1 in the rollback modes.  Reads 20
    bytes and opens no database.

    @return: C{False} as well for a file that cannot be read, or is not
        SQLite.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return header.startswith(_HEADER) and header[18:20] == b"\x02\x02"


def walProblem(path: str, error: sqlite3.OperationalError) -> str | None:
    """
    Explain a read of C{path} that failed with C{error} when the file is in
    WAL journal mode.

    SQLite reads a WAL-mode file only with a C{-shm} file beside it, which
    it creates when it can write the directory: in a read-only place
    (C{ReadOnlyPaths=} of the shipped unit, a directory the daemon's user
    cannot write), the read fails with C{attempt to write a readonly
    database} or C{unable to open database file}, which say nothing of the
    cause.  The journal mode is read from the file's header, not guessed
    from the error's text.

    @return: one sentence naming the journal mode and the fix, or L{None}
        when the file is not in WAL mode or C{error} is a lock (which has
        nothing to do with the journal mode).
    """
    if isLocked(error) or not inWALMode(path):
        return None
    return (
        f"database {path} is in WAL journal mode, which needs a -shm file beside it "
        f"that SQLite cannot create or open here ({error}); switch the file to DELETE mode "
        f"before publishing it: sqlite3 {shlex.quote(path)} 'PRAGMA journal_mode=DELETE'"
    )


def probe(path: str, lockTimeout: float) -> None:
    """
    Check that the file at C{path} is an SQLite database with a usable
    C{users} table that this process can read.  Opens it read-only: never
    creates or changes anything.  A file in WAL journal mode that cannot be
    read for want of its C{-shm} file (in a directory this process cannot
    write) is named as such, with the fix (see L{walProblem}).

    @param lockTimeout: how long to wait for another process's write lock.
    @raise DatabaseError: naming the problem, when it is not usable.
    """
    if not os.path.exists(path):
        raise DatabaseError(f"database {path} does not exist (create it with: avatard init {path})")
    if not os.path.isfile(path):
        raise DatabaseError(f"database {path} is not a regular file")
    try:
        connection = sqlite3.connect(fileURI(path), uri=True, timeout=lockTimeout)
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot open database {path}: {e}") from None
    try:
        connection.execute(f"SELECT {SELECT_COLUMNS} FROM users LIMIT 0").fetchall()  # noqa: S608
    except sqlite3.OperationalError as e:
        message = str(e)
        if message.startswith("no such table"):
            raise DatabaseError(
                f"database {path} has no users table (create it with: avatard init {path})"
            ) from None
        if message.startswith("no such column"):
            raise DatabaseError(f"the users table in {path} lacks a column: {message}") from None
        problem = walProblem(path, e)
        if problem is not None:
            raise DatabaseError(problem) from None
        raise DatabaseError(f"cannot read database {path}: {message}") from None
    except sqlite3.DatabaseError as e:
        raise DatabaseError(f"{path} is not an SQLite database ({e})") from None
    finally:
        connection.close()
