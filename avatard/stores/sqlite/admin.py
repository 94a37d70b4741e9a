"""
The admin command's operations on an SQLite file.

Each operation opens the file, and every write is one transaction.  A new
database is built under a temporary name and linked into place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from importlib.resources import files

from zope.interface import implementer

from avatard.interfaces import IAdmin
from avatard.model import SELECT_COLUMNS, UPDATE_FIELDS, Avatar, avatarFromRow
from avatard.stores.base import AdminError, DatabaseError, counted
from avatard.stores.sqlite.probe import fileURI, probe
from avatard.stores.sqlite.store import IN_CHUNK, SELECT_ONE

LOCK_TIMEOUT = 5.0
"""
How long, in seconds, an operation waits for another process's write lock
before it gives up.
"""

_INSERT = f"INSERT INTO users ({SELECT_COLUMNS}) VALUES (?, ?, ?)"  # noqa: S608
_UPSERT = _INSERT + f" ON CONFLICT (login) DO UPDATE SET {UPDATE_FIELDS}"
_INSERT_MISSING = _INSERT + " ON CONFLICT (login) DO NOTHING"


def _schema() -> str:
    return files("avatard.stores.sqlite").joinpath("schema.sql").read_text(encoding="utf-8")


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
def _anyOtherError() -> Iterator[None]:
    """
    Report an SQLite error that no operation words better in one line.
    """
    try:
        yield
    except sqlite3.Error as e:
        raise AdminError(f"database error: {e}") from None


def _initialise(connection: sqlite3.Connection, demo: Sequence[Avatar]) -> int:
    """
    Create what the schema holds that is missing, add the users of C{demo}
    that are missing, and close C{connection}.

    @return: how many users of C{demo} were added.
    """
    try:
        connection.executescript(_schema())
        with _transaction(connection):
            return _addDemo(connection, demo)
    finally:
        connection.close()


def _addDemo(connection: sqlite3.Connection, demo: Sequence[Avatar]) -> int:
    before = connection.total_changes
    connection.executemany(_INSERT_MISSING, [(a.login, a.name, a.forname) for a in demo])
    return connection.total_changes - before


@implementer(IAdmin)
class SQLiteAdmin:
    """
    The admin command's operations on the SQLite file at C{path}.  Every
    one but L{init} refuses a missing file, or one without a usable
    C{users} table, as the daemon does (L{probe}), and never creates one.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def _probe(self) -> None:
        try:
            probe(self.path, LOCK_TIMEOUT)
        except DatabaseError as e:
            raise AdminError(str(e)) from None

    @contextlib.contextmanager
    def _writable(self) -> Iterator[sqlite3.Connection]:
        """
        Open the database for writing, in one transaction.
        """
        self._probe()
        try:
            connection = sqlite3.connect(
                fileURI(self.path, "rw"), uri=True, isolation_level=None, timeout=LOCK_TIMEOUT
            )
            try:
                with _transaction(connection):
                    yield connection
            finally:
                connection.close()
        except sqlite3.Error as e:
            raise AdminError(f"cannot write to {self.path}: {e}") from None

    def _readable(self) -> sqlite3.Connection:
        self._probe()
        with _anyOtherError():
            return sqlite3.connect(fileURI(self.path, "ro"), uri=True, timeout=LOCK_TIMEOUT)

    def init(self, demo: Sequence[Avatar]) -> str:
        """
        Create the file, or the C{users} table in an existing file.

        A new file is built under a temporary name and linked into place,
        so a failure leaves nothing behind and a concurrent C{init} cannot
        clobber the file.  A path that exists but is not a regular file (a
        directory, a device) is refused.
        """
        path = self.path
        if os.path.exists(path):
            if not os.path.isfile(path):
                # As every other operation says it (probe).
                raise AdminError(f"database {path} is not a regular file")
            try:
                connection = sqlite3.connect(
                    fileURI(path, "rw"), uri=True, isolation_level=None, timeout=LOCK_TIMEOUT
                )
                added = _initialise(connection, demo)
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
            added = _initialise(sqlite3.connect(temporary, isolation_level=None, timeout=LOCK_TIMEOUT), demo)
            os.link(temporary, path)
        except FileExistsError:
            raise AdminError(f"{path} appeared while it was being created; run init again") from None
        except (OSError, sqlite3.Error) as e:
            raise AdminError(f"cannot create {path}: {e}") from None
        finally:
            os.unlink(temporary)
        return f"created {path}" + (f" with {counted(added, 'demo user')}" if demo else "")

    def add(self, avatar: Avatar) -> None:
        with self._writable() as connection:
            try:
                connection.execute(_INSERT, (avatar.login, avatar.name, avatar.forname))
            except sqlite3.IntegrityError:
                raise AdminError(f"login {avatar.login!r} already exists in {self.path}") from None

    def remove(self, login: str) -> None:
        with self._writable() as connection:
            if connection.execute("DELETE FROM users WHERE login = ?", (login,)).rowcount == 0:
                raise AdminError(f"no login {login!r} in {self.path}")

    def show(self, login: str) -> Avatar:
        connection = self._readable()
        try:
            row = connection.execute(SELECT_ONE, (login,)).fetchone()
        except sqlite3.Error as e:
            raise AdminError(f"cannot read {self.path}: {e}") from None
        finally:
            connection.close()
        if row is None:
            raise AdminError(f"no login {login!r} in {self.path}")
        return avatarFromRow(row)

    def list(self) -> Iterator[list[Avatar]]:
        """
        Read every user a batch at a time through one statement, read from
        one snapshot.  After the first batch, what can still fail is the
        reading of a later one: an I/O error, a corrupt page, or text that
        is not UTF-8.
        """
        connection = self._readable()
        try:
            cursor = connection.execute(f"SELECT {SELECT_COLUMNS} FROM users ORDER BY login")  # noqa: S608
            while rows := cursor.fetchmany(IN_CHUNK):
                yield [avatarFromRow(row) for row in rows]
        except sqlite3.Error as e:
            raise AdminError(f"cannot read {self.path}: {e}") from None
        finally:
            connection.close()

    def importUsers(self, avatars: Iterable[Avatar]) -> tuple[int, int]:
        rows = [(a.login, a.name, a.forname) for a in avatars]
        with self._writable() as connection:
            (before,) = connection.execute("SELECT count(*) FROM users").fetchone()
            connection.executemany(_UPSERT, rows)
            (after,) = connection.execute("SELECT count(*) FROM users").fetchone()
        added = after - before
        return int(added), len(rows) - int(added)
