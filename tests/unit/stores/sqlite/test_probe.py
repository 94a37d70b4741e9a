"""
L{avatard.stores.sqlite.probe}: the daemon's start-up check of an SQLite
file, and what it says of files in WAL journal mode.
"""

from __future__ import annotations

import os
import shlex
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from avatard.stores import DatabaseError, parseDatabase
from avatard.stores.sqlite import CHECK_LOCK_TIMEOUT
from avatard.stores.sqlite.probe import inWALMode, probe, walProblem
from tests.helpers import tutorialDatabase


class ProbeTests(SynchronousTestCase):
    """
    L{probe} names what is wrong with a database, and creates nothing.
    """

    def assertProblem(self, path: str, *fragments: str) -> None:
        existed = os.path.exists(path)
        with self.assertRaises(DatabaseError) as raised:
            probe(path, CHECK_LOCK_TIMEOUT)
        for fragment in fragments:
            self.assertIn(fragment, str(raised.exception))
        self.assertEqual(os.path.exists(path), existed)

    def test_missingFile(self) -> None:
        """
        A missing file is reported, not created.
        """
        path = os.path.abspath(self.mktemp())
        self.assertProblem(path, path, "does not exist", "avatard init")

    def test_notSQLite(self) -> None:
        """
        A file that is not SQLite is reported.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"login,name,forname\n" * 100)
        self.assertProblem(path, path, "is not an SQLite database")

    def test_directory(self) -> None:
        """
        A directory is not a database.
        """
        path = os.path.abspath(self.mktemp())
        os.mkdir(path)
        self.assertProblem(path, "not a regular file")

    def test_noUsersTable(self) -> None:
        """
        An SQLite file without a C{users} table is reported.
        """
        path = os.path.abspath(self.mktemp())
        sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()
        self.assertProblem(path, "has no users table")

    def test_usersTableWithoutNeededColumn(self) -> None:
        """
        A C{users} table lacking a column avatard reads is reported.
        """
        path = os.path.abspath(self.mktemp())
        sqlite3.connect(path).execute("CREATE TABLE users (login text, name text)").connection.close()
        self.assertProblem(path, "lacks a column", "forname")

    def test_emptyFileIsNotCreatedIntoADatabase(self) -> None:
        """
        An empty file has no C{users} table; probing leaves it empty.
        """
        path = os.path.abspath(self.mktemp())
        open(path, "wb").close()
        self.assertProblem(path, "has no users table")
        self.assertEqual(os.path.getsize(path), 0)

    def test_tutorialDatabaseIsFine(self) -> None:
        """
        A database made by the original tutorial's code passes: no problem
        is named, and the file is left as it was, byte for byte, with
        nothing beside it.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        path = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        with open(path, "rb") as f:
            before = f.read()
        try:
            parseDatabase(path).check(3.0)
        except DatabaseError as e:
            self.fail(f"the tutorial's database was refused: {e}")
        with open(path, "rb") as f:
            self.assertTrue(f.read() == before, "the probe changed the file")
        self.assertEqual(os.listdir(directory), ["users.sqlite"])

    def test_walDatabaseInAWritableDirectoryIsFine(self) -> None:
        """
        A database in WAL journal mode passes where its C{-shm} file can be
        made: only a directory that cannot be written makes WAL a problem.
        """
        probe(walDatabase(os.path.abspath(self.mktemp())), CHECK_LOCK_TIMEOUT)


def walDatabase(path: str) -> str:
    """
    Make a tutorial database in WAL journal mode, closed (so that SQLite
    has removed its C{-wal} and C{-shm} files).

    @return: C{path}.
    """
    connection = sqlite3.connect(tutorialDatabase(path), isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    return path


class JournalModeTests(SynchronousTestCase):
    """
    L{inWALMode} reads the journal mode from a file's header, and
    L{walProblem} explains a failed read of a WAL-mode file.
    """

    def setUp(self) -> None:
        self.wal = walDatabase(os.path.abspath(self.mktemp()))
        self.rollback = tutorialDatabase(os.path.abspath(self.mktemp()))

    def test_walModeIsReadFromTheHeader(self) -> None:
        """
        A WAL-mode database is told apart from one in DELETE mode (the
        default), and from files that are no database at all.
        """
        self.assertTrue(inWALMode(self.wal))
        self.assertFalse(inWALMode(self.rollback))
        notSQLite = os.path.abspath(self.mktemp())
        with open(notSQLite, "wb") as f:
            f.write(b"\x02" * 100)
        self.assertFalse(inWALMode(notSQLite))
        self.assertFalse(inWALMode(os.path.abspath(self.mktemp())))

    def test_walProblemNamesTheModeAndTheFix(self) -> None:
        """
        A read of a WAL-mode file that failed for want of its C{-shm} file
        is explained with SQLite's words, the journal mode and the command
        that switches the file to DELETE mode.
        """
        error = sqlite3.OperationalError("attempt to write a readonly database")
        self.assertEqual(
            walProblem(self.wal, error),
            f"database {self.wal} is in WAL journal mode, which needs a -shm file beside it that "
            "SQLite cannot create or open here (attempt to write a readonly database); switch the "
            f"file to DELETE mode before publishing it: sqlite3 {self.wal} 'PRAGMA journal_mode=DELETE'",
        )

    def test_walProblemQuotesThePathForTheShell(self) -> None:
        """
        The command in the explanation can be pasted into a shell whatever
        the path holds.
        """
        path = walDatabase(os.path.abspath(self.mktemp()) + " it's here.sqlite")
        problem = walProblem(path, sqlite3.OperationalError("unable to open database file"))
        assert problem is not None
        command = problem.rsplit(": ", 1)[1]
        self.assertEqual(shlex.split(command), ["sqlite3", path, "PRAGMA journal_mode=DELETE"])

    def test_noWALProblemForLocksOrOtherModes(self) -> None:
        """
        A lock has nothing to do with the journal mode, and a file in
        another mode fails for other reasons: neither is explained.
        """
        self.assertIsNone(walProblem(self.wal, sqlite3.OperationalError("database is locked")))
        self.assertIsNone(
            walProblem(self.rollback, sqlite3.OperationalError("attempt to write a readonly database"))
        )
