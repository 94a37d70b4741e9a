"""
The admin command on PostgreSQL: the suite shared with SQLite (in
L{tests.admincommand}), and what only PostgreSQL does.
"""

from __future__ import annotations

import time

from twisted.trial.unittest import SynchronousTestCase

from tests.admincommand import ImportTestsMixin, UserTestsMixin, run
from tests.backends import PostgresBackend, connectPostgres


class PostgresUserTests(PostgresBackend, UserTestsMixin, SynchronousTestCase):
    """
    The shared user commands' tests on PostgreSQL.
    """


class PostgresImportTests(PostgresBackend, ImportTestsMixin, SynchronousTestCase):
    """
    The shared import tests on PostgreSQL.
    """


class PostgresAdminTests(PostgresBackend, SynchronousTestCase):
    """
    What the admin commands do only on PostgreSQL.
    """

    def test_initCreatesTheTable(self) -> None:
        """
        C{init} creates the C{users} table in an existing database, then
        only adds what is missing.
        """
        db = self.newDatabase()
        name = self.describe(db)
        result = run("init", db)
        self.assertEqual((result.status, result.out), (0, f"created the users table in {name}\n"))
        self.assertEqual(self.rows(db), [])
        self.insertRows(db, [("yoen", "Changed", "Name")])
        self.assertEqual(run("init", "--demo", db).out, f"{name} is ready; 2 demo users added\n")
        self.assertIn(("yoen", "Changed", "Name"), self.rows(db))

    def test_oneDemoUserIsCountedInTheSingular(self) -> None:
        """
        C{init --demo} counts one demo user added as one user, and three
        as three users.
        """
        db = self.newDatabase()
        name = self.describe(db)
        self.assertEqual(run("init", db).out, f"created the users table in {name}\n")
        self.insertRows(db, [("yoen", "V", "Y"), ("esteban", "G", "E")])
        self.assertEqual(run("init", "--demo", db).out, f"{name} is ready; 1 demo user added\n")
        other = self.newDatabase()
        self.assertEqual(
            run("init", "--demo", other).out,
            f"created the users table in {self.describe(other)} with 3 demo users\n",
        )

    def test_noUsersTable(self) -> None:
        """
        Every command but C{init} on a database without a C{users} table
        is one clear error.
        """
        db = self.newDatabase()
        name = self.describe(db)
        for argv in (("add", db, "a", "b", "c"), ("remove", db, "a"), ("show", db, "a")):
            result = run(*argv)
            self.assertEqual(
                (result.status, result.err),
                (1, f"avatard: database {name} has no users table (create it with: avatard init {name})\n"),
            )

    def test_listWritesNothingWhenTheFirstRowsCannotBeRead(self) -> None:
        """
        A failure while the first rows are fetched (here a C{users} view
        that divides by zero for each row) fails C{list} before it writes
        anything.
        """
        db = self.newDatabase()
        with connectPostgres(db) as connection:
            connection.execute(
                "CREATE VIEW users AS SELECT login, name, (1 / (length(login) - length(login)))::text "
                "AS forname FROM (VALUES ('yoen', 'Van der Veld')) AS v (login, name)"
            )
        result = run("list", db)
        self.assertEqual((result.status, result.out), (1, ""))
        self.assertIn("division by zero", result.err)

    def test_unreachableServer(self) -> None:
        """
        A server that cannot be reached is one line, without the password.
        """
        result = run("show", "postgresql://avatard:s3cret@127.0.0.1:1/users", "yoen")
        self.assertEqual(result.status, 1)
        self.assertTrue(
            result.err.startswith("avatard: cannot connect to postgresql://avatard:***@127.0.0.1:1/users: "),
            result.err,
        )
        self.assertEqual(result.err.count("\n"), 1)
        self.assertNotIn("s3cret", result.err)

    def test_importManyRows(self) -> None:
        """
        A large import goes through C{COPY} in about a second, and a second
        import of the same rows updates them all.
        """
        db = self.newDatabase()
        run("init", db)
        path = self.mktemp() + ".csv"
        count = 100_000
        with open(path, "w") as f:
            f.writelines(f"user{i:07},Name {i},Given\n" for i in range(count))
        started = time.monotonic()
        result = run("import", db, path)
        elapsed = time.monotonic() - started
        self.assertEqual(result.out, f"imported {count} users from {path}: {count} added, 0 updated\n")
        self.assertLess(elapsed, 10.0)
        result = run("import", db, path)
        self.assertEqual(result.out, f"imported {count} users from {path}: 0 added, {count} updated\n")
        with connectPostgres(db) as connection:
            self.assertEqual(connection.execute("SELECT count(*) FROM users").fetchone()[0], count)
