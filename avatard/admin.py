"""
Managing the users of a database: what the C{avatard} admin command does.

Everything here is synchronous: the admin command is a short-lived process
with nothing else to do while it waits on the database.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from importlib.resources import files
from typing import TextIO

from avatard.database import Database, DatabaseError, PostgresDatabase, SQLiteDatabase
from avatard.model import COLUMNS, SELECT_COLUMNS, Avatar, avatarFromRow, userProblem
from avatard.sqlite import IN_CHUNK, SELECT_ONE, probe

DEMO_USERS = (
    Avatar("yoen", "Van der Veld", "Yoen"),
    Avatar("esteban", "Garcia Marquez", "Estebán"),
    Avatar("mohamed", "Al Ghâlib", "Mohamed"),
)
"""
The three users of the original tutorial, added by C{avatard init --demo}.
"""

CSV_HEADER = COLUMNS

LOCK_TIMEOUT = 5.0
"""
How long, in seconds, a command waits for another process's write lock
before it gives up.
"""

_INSERT = "INSERT INTO users (login, name, forname) VALUES (?, ?, ?)"
_UPSERT = _INSERT + " ON CONFLICT (login) DO UPDATE SET name = excluded.name, forname = excluded.forname"
_INSERT_MISSING = _INSERT + " ON CONFLICT (login) DO NOTHING"


class AdminError(Exception):
    """
    An admin command cannot do what it was asked.  C{str()} of it is the one
    line shown to the person who asked.
    """


# avatard.pgadmin is imported only for a PostgreSQL database: it needs the
# driver, an optional dependency.


@contextlib.contextmanager
def _asAdminError() -> Iterator[None]:
    from avatard.pgadmin import PostgresAdminError

    try:
        yield
    except PostgresAdminError as e:
        raise AdminError(str(e)) from None


def _schema() -> str:
    return files("avatard").joinpath("schema/sqlite.sql").read_text(encoding="utf-8")


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """
    Run a block in one write transaction: commit when it ends, roll back if
    it raises.  C{connection} must be in autocommit mode.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextlib.contextmanager
def _writable(database: SQLiteDatabase) -> Iterator[sqlite3.Connection]:
    """
    Open an existing database that has a C{users} table, for writing, in one
    transaction.  Never creates a file.
    """
    try:
        probe(database, LOCK_TIMEOUT)
    except DatabaseError as e:
        raise AdminError(str(e)) from None
    try:
        connection = sqlite3.connect(database.uri("rw"), uri=True, isolation_level=None, timeout=LOCK_TIMEOUT)
        try:
            with _transaction(connection):
                yield connection
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise AdminError(f"cannot write to {database.path}: {e}") from None


def _readable(database: SQLiteDatabase) -> sqlite3.Connection:
    try:
        probe(database, LOCK_TIMEOUT)
    except DatabaseError as e:
        raise AdminError(str(e)) from None
    return sqlite3.connect(database.uri("ro"), uri=True, timeout=LOCK_TIMEOUT)


def counted(count: int, noun: str) -> str:
    """
    @return: C{count} and C{noun}, in the plural unless C{count} is 1:
        C{"1 user"}, C{"2 users"}, C{"0 users"}.
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def initDatabase(database: Database, demo: bool = False) -> str:
    """
    Create the C{users} table, and with C{demo} the three demo users.

    A new file is built under a temporary name and linked into place, so a
    failure leaves nothing behind and a concurrent C{init} cannot clobber
    the file.  On an existing database the table is created if it is
    missing, and users already there are left untouched.  A path that
    exists but is not a regular file (a directory, a device) is refused.

    On PostgreSQL, the database must exist: the table is created in it
    (in the first schema of the connection's C{search_path}) if missing.

    @return: a sentence saying what was done.
    """
    if isinstance(database, PostgresDatabase):
        from avatard import pgadmin

        with _asAdminError():
            existed, added = pgadmin.initDatabase(database, DEMO_USERS if demo else ())
        name = database.describe()
        if existed:
            return f"{name} is ready" + (f"; {counted(added, 'demo user')} added" if demo else "")
        return f"created the users table in {name}" + (f" with {counted(added, 'demo user')}" if demo else "")
    path = database.path
    if os.path.exists(path):
        if not os.path.isfile(path):
            # As every other command says it (avatard.sqlite.probe).
            raise AdminError(f"database {path} is not a regular file")
        try:
            connection = sqlite3.connect(
                database.uri("rw"), uri=True, isolation_level=None, timeout=LOCK_TIMEOUT
            )
            try:
                connection.executescript(_schema())
                with _transaction(connection):
                    added = _addDemo(connection) if demo else 0
            finally:
                connection.close()
        except sqlite3.Error as e:
            raise AdminError(f"cannot initialise {path}: {e}") from None
        return f"{path} is ready" + (f"; {counted(added, 'demo user')} added" if demo else "")

    directory = os.path.dirname(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=".avatard-init-", suffix=".sqlite", dir=directory)
    except OSError as e:
        raise AdminError(f"cannot create {path}: {e.strerror}: {directory}") from None
    os.close(handle)
    try:
        connection = sqlite3.connect(temporary, isolation_level=None, timeout=LOCK_TIMEOUT)
        try:
            connection.executescript(_schema())
            with _transaction(connection):
                added = _addDemo(connection) if demo else 0
        finally:
            connection.close()
        os.link(temporary, path)
    except FileExistsError:
        raise AdminError(f"{path} appeared while it was being created; run init again") from None
    except (OSError, sqlite3.Error) as e:
        raise AdminError(f"cannot create {path}: {e}") from None
    finally:
        os.unlink(temporary)
    return f"created {path}" + (f" with {counted(added, 'demo user')}" if demo else "")


def _addDemo(connection: sqlite3.Connection) -> int:
    before = connection.total_changes
    connection.executemany(_INSERT_MISSING, [(a.login, a.name, a.forname) for a in DEMO_USERS])
    return connection.total_changes - before


def addUser(database: Database, avatar: Avatar) -> None:
    """
    Add one user.

    @raise AdminError: if the user is not valid or the login is taken.
    """
    problem = userProblem(avatar)
    if problem is not None:
        raise AdminError(problem)
    if isinstance(database, PostgresDatabase):
        from avatard import pgadmin

        with _asAdminError():
            pgadmin.addUser(database, avatar)
        return
    with _writable(database) as connection:
        try:
            connection.execute(_INSERT, (avatar.login, avatar.name, avatar.forname))
        except sqlite3.IntegrityError:
            raise AdminError(f"login {avatar.login!r} already exists in {database.path}") from None


def removeUser(database: Database, login: str) -> None:
    """
    Remove one user.

    @raise AdminError: if there is no such login.
    """
    if isinstance(database, PostgresDatabase):
        from avatard import pgadmin

        with _asAdminError():
            pgadmin.removeUser(database, login)
        return
    with _writable(database) as connection:
        if connection.execute("DELETE FROM users WHERE login = ?", (login,)).rowcount == 0:
            raise AdminError(f"no login {login!r} in {database.path}")


def showUser(database: Database, login: str) -> Avatar:
    """
    @return: the user with that login.
    @raise AdminError: if there is none.
    """
    if isinstance(database, PostgresDatabase):
        from avatard import pgadmin

        with _asAdminError():
            return pgadmin.showUser(database, login)
    connection = _readable(database)
    try:
        row = connection.execute(SELECT_ONE, (login,)).fetchone()
    except sqlite3.Error as e:
        raise AdminError(f"cannot read {database.path}: {e}") from None
    finally:
        connection.close()
    if row is None:
        raise AdminError(f"no login {login!r} in {database.path}")
    return avatarFromRow(row)


def listUsers(database: Database) -> Iterator[list[Avatar]]:
    """
    Read every user, ordered by login, a batch at a time: memory stays
    bounded whatever the number of users.

    Opening the database, checking its C{users} table and running the
    query all happen before the first batch is yielded, so every failure
    of those (a missing file or table, a locked database, a server that
    cannot be reached) raises before anything is yielded; so does a row of
    the first batch that cannot be read.  The query is one statement, read
    from one snapshot; what can still fail after the first batch is the
    reading of a later one: on SQLite an I/O error, a corrupt page, or text
    that is not UTF-8; on PostgreSQL a connection lost or a transaction
    ended by the server (a restart, C{pg_terminate_backend}, an
    C{idle_in_transaction_session_timeout} while the reader is slow).

    @return: the users, in batches that are never empty.
    @raise AdminError: when the database cannot be read.
    """
    if isinstance(database, PostgresDatabase):
        from avatard import pgadmin

        with _asAdminError():
            yield from pgadmin.listUsers(database)
        return
    connection = _readable(database)
    try:
        cursor = connection.execute(f"SELECT {SELECT_COLUMNS} FROM users ORDER BY login")  # noqa: S608
        while rows := cursor.fetchmany(IN_CHUNK):
            yield [avatarFromRow(row) for row in rows]
    except sqlite3.Error as e:
        raise AdminError(f"cannot read {database.path}: {e}") from None
    finally:
        connection.close()


def parseCSV(data: bytes, source: str) -> list[Avatar]:
    """
    Read users from CSV: UTF-8 (a byte-order mark is allowed), one
    C{login,name,forname} row per user, an optional header row naming those
    columns, blank lines ignored.

    @param source: how to name the file in errors.
    @raise AdminError: at the first bad row, naming its line.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise AdminError(f"{source}, line {line}: not valid UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    avatars: list[Avatar] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if not avatars and not seen and tuple(c.strip().lower() for c in row) == CSV_HEADER:
                continue
            if len(row) != 3:
                raise AdminError(
                    f"{source}, line {line}: expected 3 fields (login,name,forname), found {len(row)}"
                )
            avatar = Avatar(*row)
            problem = userProblem(avatar)
            if problem is not None:
                raise AdminError(f"{source}, line {line}: {problem}")
            if avatar.login in seen:
                first = seen[avatar.login]
                raise AdminError(
                    f"{source}, line {line}: login {avatar.login!r} already appears on line {first}"
                )
            seen[avatar.login] = line
            avatars.append(avatar)
    except csv.Error as e:
        raise AdminError(f"{source}, line {reader.line_num}: malformed CSV: {e}") from None
    return avatars


def importUsers(database: Database, avatars: Iterable[Avatar]) -> tuple[int, int]:
    """
    Add or update users, all in one transaction (on PostgreSQL, sent with
    C{COPY}).

    @return: how many users were added, and how many updated.
    """
    if isinstance(database, PostgresDatabase):
        from avatard import pgadmin

        with _asAdminError():
            return pgadmin.importUsers(database, avatars)
    rows = [(a.login, a.name, a.forname) for a in avatars]
    with _writable(database) as connection:
        (before,) = connection.execute("SELECT count(*) FROM users").fetchone()
        connection.executemany(_UPSERT, rows)
        (after,) = connection.execute("SELECT count(*) FROM users").fetchone()
    added = after - before
    return added, len(rows) - added


def writeCSV(batches: Iterable[Sequence[Avatar]], out: TextIO) -> None:
    """
    Write users as CSV that L{parseCSV} reads back: a header, then a row per
    user.

    Nothing is written before the first batch has been read: with
    L{listUsers}, a database that cannot be opened or read at all leaves
    C{out} untouched.  A failure reading a later batch leaves the rows
    written before it, whole, in C{out}.
    """
    remaining = iter(batches)
    first = next(remaining, ())
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for batch in itertools.chain((first,), remaining):
        writer.writerows((a.login, a.name, a.forname) for a in batch)
