"""
The admin command on SQLite files: what only a file can do (be created,
be missing, be locked, hold what is not UTF-8).
"""

from __future__ import annotations

import os
import sqlite3

from avatard.stores.sqlite import admin as sqliteAdmin
from tests.admincommand import CLITestCase, rows, run
from tests.helpers import TUTORIAL_USERS, tutorialDatabase


class InitTests(CLITestCase):
    """
    C{avatard init}.
    """

    def test_initCreatesEmptyUsersTable(self) -> None:
        """
        C{init DB} creates the file with an empty C{users} table and leaves
        no temporary file behind.
        """
        result = run("init", self.db)
        self.assertEqual((result.status, result.out), (0, f"created {self.db}\n"))
        self.assertEqual(rows(self.db), [])
        self.assertEqual(os.listdir(self.directory), ["users.sqlite"])

    def test_initKeepsRowsInTheLoginsBTree(self) -> None:
        """
        The table C{init} creates has no rowid: its rows live in the
        login's B-tree, so that a lookup reads one B-tree, not two.
        """
        run("init", self.db)
        connection = sqlite3.connect(self.db)
        try:
            with self.assertRaisesRegex(sqlite3.OperationalError, "no such column: rowid"):
                connection.execute("SELECT rowid FROM users")
            plan = connection.execute(
                "EXPLAIN QUERY PLAN SELECT login, name, forname FROM users WHERE login = 'x'"
            ).fetchall()
        finally:
            connection.close()
        self.assertEqual(len(plan), 1)
        self.assertIn("PRIMARY KEY (login=?)", plan[0][-1])

    def test_demoAddsTheTutorialUsers(self) -> None:
        """
        C{init --demo DB} adds yoen, esteban and mohamed.
        """
        result = run("init", "--demo", self.db)
        self.assertEqual(result.out, f"created {self.db} with 3 demo users\n")
        self.assertEqual(rows(self.db), sorted(TUTORIAL_USERS))

    def test_initKeepsAnExistingDatabase(self) -> None:
        """
        On an existing database, C{init} keeps every user, and C{--demo}
        adds only the demo users that are missing.
        """
        tutorialDatabase(self.db, [("yoen", "Changed", "Name"), ("zed", "Z", "Zed")])
        result = run("init", "--demo", self.db)
        self.assertEqual(result.out, f"{self.db} is ready; 2 demo users added\n")
        self.assertIn(("yoen", "Changed", "Name"), rows(self.db))
        self.assertEqual(len(rows(self.db)), 4)

    def test_oneDemoUserIsCountedInTheSingular(self) -> None:
        """
        C{init --demo} counts one demo user added as one user.
        """
        tutorialDatabase(self.db, [("yoen", "V", "Y"), ("esteban", "G", "E")])
        self.assertEqual(run("init", "--demo", self.db).out, f"{self.db} is ready; 1 demo user added\n")

    def test_initOnAFileThatIsNotSQLite(self) -> None:
        """
        C{init} refuses to touch a file that is not SQLite.
        """
        path = self.writeFile("notes.txt", b"hello, this is not a database at all" * 20)
        result = run("init", path)
        self.assertEqual(result.status, 1)
        self.assertIn("file is not a database", result.err)

    def test_initOnADirectory(self) -> None:
        """
        C{init} on a directory says it is not a regular file, in the words
        every other command uses.
        """
        path = os.path.join(self.directory, "folder")
        os.mkdir(path)
        for argv in (("init", path), ("init", "--demo", path), ("add", path, "a", "b", "c"), ("list", path)):
            self.assertFails(run(*argv), f"database {path} is not a regular file")
        self.assertEqual(os.listdir(path), [])

    def test_initInMissingDirectory(self) -> None:
        """
        A database in a directory that does not exist is one clear error.
        """
        path = os.path.join(self.directory, "nowhere", "users.sqlite")
        result = run("init", path)
        self.assertEqual(result.status, 1)
        self.assertIn(f"cannot create {path}", result.err)


class SQLiteOnlyUserTests(CLITestCase):
    """
    What only an SQLite file can do wrong.
    """

    def setUp(self) -> None:
        super().setUp()
        run("init", "--demo", self.db)

    def test_missingDatabase(self) -> None:
        """
        Every command on a missing database is one clear error, and creates
        no file.
        """
        missing = os.path.join(self.directory, "missing.sqlite")
        for argv in (
            ("add", missing, "a", "b", "c"),
            ("remove", missing, "a"),
            ("show", missing, "a"),
            ("list", missing),
        ):
            result = run(*argv)
            self.assertFails(
                result, f"database {missing} does not exist (create it with: avatard init {missing})"
            )
        self.assertFalse(os.path.exists(missing))

    def test_listWritesNothingWhenTheFirstRowsCannotBeRead(self) -> None:
        """
        A row that cannot be read among the first ones read (text that is
        not UTF-8) fails C{list} before it writes anything.
        """
        connection = sqlite3.connect(self.db)
        connection.execute("INSERT INTO users VALUES ('bad', CAST(x'ff' AS TEXT), 'F')")
        connection.commit()
        connection.close()
        result = run("list", self.db)
        self.assertEqual((result.status, result.out), (1, ""))
        self.assertIn(f"avatard: cannot read {self.db}: Could not decode to UTF-8", result.err)

    def test_lockedDatabase(self) -> None:
        """
        A database locked by another writer is one clear error, not a hang
        or a traceback.
        """
        self.patch(sqliteAdmin, "LOCK_TIMEOUT", 0.05)
        holder = sqlite3.connect(self.db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        self.addCleanup(holder.close)
        result = run("add", self.db, "jdoe", "Doe", "Jane")
        self.assertEqual(result.status, 1)
        self.assertIn("database is locked", result.err)
