"""
The admin command as people run it: C{python -m avatard}, in a process of
its own, its standard input and output pipes.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.admincommand import CLITestCase, rows, run
from tests.daemon import environment


class EntryPointTests(CLITestCase):
    """
    The ways in of the admin command run as a program, from this source
    tree.
    """

    def test_pythonDashM(self) -> None:
        """
        C{python -m avatard} is the admin command, with help on every
        command.
        """
        for argv in ([], ["init"], ["add"], ["remove"], ["show"], ["list"], ["import"]):
            out = subprocess.run(
                [sys.executable, "-m", "avatard", *argv, "--help"],
                env=environment(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            self.assertIn("usage: avatard", out)

    def test_importReadsThePipedStandardInput(self) -> None:
        """
        C{avatard import DB -} reads the CSV piped into the process.
        """
        run("init", self.db)
        result = subprocess.run(
            [sys.executable, "-m", "avatard", "import", self.db, "-"],
            input="login,name,forname\nélodie,Ñ,É\n".encode(),
            env=environment(),
            capture_output=True,
            check=False,
        )
        self.assertEqual((result.returncode, result.stderr), (0, b""))
        self.assertEqual(rows(self.db), [("élodie", "Ñ", "É")])

    def test_brokenPipeIsQuiet(self) -> None:
        """
        C{avatard list DB | head -1} ends quietly.
        """
        run("init", "--demo", self.db)
        connection = sqlite3.connect(self.db)
        connection.executemany(
            "INSERT INTO users VALUES (?, 'N', 'F')", [(f"u{i:06}",) for i in range(50000)]
        )
        connection.commit()
        connection.close()
        process = subprocess.Popen(
            [sys.executable, "-m", "avatard", "list", self.db],
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read()
        self.assertEqual(process.wait(), 0)
        self.assertEqual(err, b"")
