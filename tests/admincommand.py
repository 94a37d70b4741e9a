"""
The C{avatard} admin command run in-process, and the suite of its tests
that every backend shares: each backend's test module runs it on its own
databases (see L{tests.backends}).
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import sys
from collections.abc import Iterable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from avatard.admin.cli import main
from tests.backends import _TestCase


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status = status
        self.out = out
        self.err = err


def run(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = main(list(argv), out=out, err=err)
        except SystemExit as e:
            status = int(e.code or 0)
    return Result(status, out.getvalue(), err.getvalue())


def rows(path: str) -> list[tuple[str, str, str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT login, name, forname FROM users ORDER BY login").fetchall()
    finally:
        connection.close()


class CLIHelpers(_TestCase):
    """
    Checks of a command's outcome, and files in the test's C{directory}.
    """

    directory: str

    def assertFails(self, result: Result, message: str) -> None:
        self.assertEqual(result.status, 1, result.err)
        self.assertEqual(result.err, f"avatard: {message}\n")
        self.assertNotIn("Traceback", result.err)

    def writeFile(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path


class CLITestCase(CLIHelpers, SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = os.path.join(self.directory, "users.sqlite")


class SharedCLITests(CLIHelpers):
    """
    The base of the tests shared by both backends: C{self.db} is a database
    made with C{init --demo}, C{self.name} how messages name it.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = self.newDatabase()
        self.name = self.describe(self.db)
        self.assertEqual(run("init", "--demo", self.db).status, 0)

    def newDatabase(self) -> str:
        raise NotImplementedError()

    def describe(self, db: str) -> str:
        raise NotImplementedError()

    def rows(self, db: str) -> list[tuple[str, str, str]]:
        raise NotImplementedError()

    def tutorialDatabase(self, users: Iterable[tuple[Any, ...]]) -> str:
        raise NotImplementedError()


class UserTestsMixin(SharedCLITests):
    """
    C{add}, C{remove}, C{show} and C{list}.
    """

    def test_addThenShow(self) -> None:
        """
        A user added can be shown.
        """
        result = run("add", self.db, "jdoe", "Doe", "Jane")
        self.assertEqual((result.status, result.out), (0, "added jdoe\n"))
        result = run("show", self.db, "jdoe")
        self.assertEqual(result.out, "login: jdoe\nname: Doe\nforname: Jane\n")

    def test_addDuplicateLogin(self) -> None:
        """
        Adding a login that exists fails and changes nothing.
        """
        self.assertFails(
            run("add", self.db, "yoen", "Other", "Person"), f"login 'yoen' already exists in {self.name}"
        )
        self.assertIn(("yoen", "Van der Veld", "Yoen"), self.rows(self.db))

    def test_addInvalidLogin(self) -> None:
        """
        A login the daemon could never serve is refused.
        """
        self.assertFails(
            run("add", self.db, "a b", "Doe", "Jane"),
            "login 'a b': login contains white space",
        )
        self.assertFails(
            run("add", self.db, "jdoe", "Doe\n", "Jane"),
            "name 'Doe\\n' contains a control character",
        )

    def test_removeThenShowFails(self) -> None:
        """
        A removed user is gone; removing or showing a missing login fails.
        """
        self.assertEqual(run("remove", self.db, "yoen").out, "removed yoen\n")
        self.assertFails(run("show", self.db, "yoen"), f"no login 'yoen' in {self.name}")
        self.assertFails(run("remove", self.db, "yoen"), f"no login 'yoen' in {self.name}")

    def test_listWritesCSVOrderedByLogin(self) -> None:
        """
        C{list} writes a header and one CSV row per user, by login.
        """
        self.assertEqual(
            run("list", self.db).out,
            "login,name,forname\n"
            "esteban,Garcia Marquez,Estebán\n"
            "mohamed,Al Ghâlib,Mohamed\n"
            "yoen,Van der Veld,Yoen\n",
        )

    def test_nullNamesShowAndListAsEmpty(self) -> None:
        """
        A row with C{NULL} names (the tutorial's table allows them, C{add}
        never makes them) shows and lists its names as empty.
        """
        db = self.tutorialDatabase([("ghost", None, None)])
        self.assertEqual(run("show", db, "ghost").out, "login: ghost\nname: \nforname: \n")
        self.assertEqual(run("list", db).out, "login,name,forname\nghost,,\n")

    def test_listOrdersByCodePoint(self) -> None:
        """
        C{list} orders logins by code point, whatever the database's
        collation: upper case before lower case, accented letters last.
        """
        for login in ("Zed", "élodie", "abel"):
            run("add", self.db, login, "N", "F")
        logins = [line.split(",")[0] for line in run("list", self.db).out.splitlines()[1:]]
        self.assertEqual(logins, ["Zed", "abel", "esteban", "mohamed", "yoen", "élodie"])

    def test_listWritesNothingWhenItFails(self) -> None:
        """
        C{list} on a database it cannot read writes nothing to standard
        output, not even the CSV header: C{avatard list DB > users.csv}
        leaves an empty file beside the error.
        """
        db = self.newDatabase()
        result = run("list", db)
        self.assertEqual(result.status, 1, result.err)
        self.assertEqual(result.out, "")
        self.assertTrue(result.err.startswith("avatard: "), result.err)

    def test_usageErrorExitsTwo(self) -> None:
        """
        A command line that is not understood exits 2 with argparse's
        message.
        """
        result = run("add", self.db, "only-login")
        self.assertEqual(result.status, 2)
        self.assertIn("the following arguments are required: NAME, FORNAME", result.err)
        self.assertEqual(run("frobnicate").status, 2)


class ImportTestsMixin(SharedCLITests):
    """
    C{avatard import}.
    """

    def test_importUpserts(self) -> None:
        """
        New logins are added and existing ones updated; a header and blank
        lines are fine; quoted fields may hold commas.
        """
        path = self.writeFile(
            "users.csv",
            'login,name,forname\n\nyoen,Veld,Yoen\njdoe,"Doe, Jr",Jane\r\nélodie,Ñ,É\n'.encode(),
        )
        result = run("import", self.db, path)
        self.assertEqual(result.out, f"imported 3 users from {path}: 2 added, 1 updated\n")
        self.assertIn(("yoen", "Veld", "Yoen"), self.rows(self.db))
        self.assertIn(("jdoe", "Doe, Jr", "Jane"), self.rows(self.db))
        self.assertIn(("élodie", "Ñ", "É"), self.rows(self.db))

    def test_oneUserIsCountedInTheSingular(self) -> None:
        """
        C{import} counts one user imported as one user.
        """
        path = self.writeFile("one.csv", b"jdoe,Doe,Jane\n")
        self.assertEqual(
            run("import", self.db, path).out, f"imported 1 user from {path}: 1 added, 0 updated\n"
        )
        self.assertEqual(
            run("import", self.db, path).out, f"imported 1 user from {path}: 0 added, 1 updated\n"
        )

    def test_listOutputImportsBack(self) -> None:
        """
        What C{list} writes, C{import} reads back unchanged.
        """
        run("add", self.db, "q", 'Quote "Q", Esq', "Q")
        exported = self.writeFile("all.csv", run("list", self.db).out.encode())
        other = self.newDatabase()
        run("init", other)
        self.assertEqual(run("import", other, exported).status, 0)
        self.assertEqual(self.rows(other), self.rows(self.db))

    def test_importFromStandardInput(self) -> None:
        """
        C{import DB -} reads the CSV from standard input, and its messages
        name it so.
        """
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"jdoe,Doe,Jane\nyoen,Veld,Yoen\n")))
        result = run("import", self.db, "-")
        self.assertEqual(result.out, "imported 2 users from standard input: 1 added, 1 updated\n")
        self.assertIn(("jdoe", "Doe", "Jane"), self.rows(self.db))
        self.assertIn(("yoen", "Veld", "Yoen"), self.rows(self.db))
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"new,A,B\nbad,C\n")))
        self.assertFails(
            run("import", self.db, "-"),
            "standard input, line 2: expected 3 fields (login,name,forname), found 2",
        )
        self.assertNotIn("new", [row[0] for row in self.rows(self.db)])

    def assertImportFails(self, data: bytes, message: str) -> None:
        before = self.rows(self.db)
        path = self.writeFile("bad.csv", data)
        self.assertFails(run("import", self.db, path), f"{path}, {message}")
        self.assertEqual(self.rows(self.db), before)

    def test_badRowWritesNothing(self) -> None:
        """
        A bad row anywhere is reported with its line number, and nothing
        from the file is written, not even the good rows before it.
        """
        self.assertImportFails(
            b"new1,A,B\nyoen,Changed,C\nnew2,C\n",
            "line 3: expected 3 fields (login,name,forname), found 2",
        )

    def test_invalidLoginInFile(self) -> None:
        """
        A login the daemon could not serve is a bad row.
        """
        self.assertImportFails(
            b"ok,A,B\nx@y,A,B\n", "line 2: login 'x@y': forwarding (user@host) is not supported"
        )

    def test_duplicateLoginInFile(self) -> None:
        """
        The same login twice in one file is ambiguous, hence refused.
        """
        self.assertImportFails(b"a,A,B\nb,B,C\na,X,Y\n", "line 3: login 'a' already appears on line 1")

    def test_notUTF8(self) -> None:
        """
        A file that is not UTF-8 is refused with the line of the first bad
        byte.
        """
        self.assertImportFails(b"a,A,B\nb,\xe9t\xe9,C\n", "line 2: not valid UTF-8")

    def test_malformedQuoting(self) -> None:
        """
        Broken CSV quoting is refused, naming the line.
        """
        self.assertImportFails(b'a,A,B\nb,"un"closed,C\n', "line 2: malformed CSV: ',' expected after '\"'")

    def test_unreadableFile(self) -> None:
        """
        A file that cannot be read is one clear error.
        """
        missing = os.path.join(self.directory, "nope.csv")
        self.assertFails(run("import", self.db, missing), f"cannot read {missing}: No such file or directory")
