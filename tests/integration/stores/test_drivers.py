"""
A backend's driver is imported only when a database of that backend is
used: checked in fresh interpreters, where nothing has imported it yet.
"""

from __future__ import annotations

import json
import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from avatard.stores.postgres import POSTGRES_EXTRA
from tests.daemon import environment, runPython
from tests.helpers import tutorialDatabase

_WITHOUT_PSYCOPG = textwrap.dedent(
    """
    import io, json, sys
    sys.modules["psycopg"] = None  # as if not installed: importing it fails

    from twisted.python import usage

    from avatard.admin.cli import main
    from avatard.stores import DatabaseError, parseDatabase
    from avatard.tap import Options

    result = {"sqlite": parseDatabase(sys.argv[1]).backend.name}
    try:
        parseDatabase("postgresql://u@h/d")
    except DatabaseError as e:
        result["parse"] = str(e)
    try:
        Options().parseOptions(["--db", "postgresql://u@h/d"])
    except usage.UsageError as e:
        result["daemon"] = str(e)
    sys.stderr = io.StringIO()
    try:
        main(["show", "postgres://u@h/d", "yoen"])
    except SystemExit as e:
        result["admin"] = [e.code, sys.stderr.getvalue().splitlines()[-1]]
    print(json.dumps(result))
    """
)


_DRIVERS_IMPORTED = textwrap.dedent(
    """
    import io, json, sys

    from twisted.internet.testing import MemoryReactorClock

    from avatard.admin.cli import main
    from avatard.tap import Options, makeService

    options = Options()
    options.parseOptions(["--db", sys.argv[1], "--port", "tcp:0"])
    service = makeService(options, MemoryReactorClock())
    out = io.StringIO()
    status = main(["list", sys.argv[1]], out=out)
    print(json.dumps({"status": status, "psycopg": "psycopg" in sys.modules}))
    """
)


class DriverTests(SynchronousTestCase):
    """
    A backend's driver is imported only when a database of that backend is
    used: the registry, the daemon and the admin command work without
    psycopg, as long as no PostgreSQL database is named.
    """

    def test_withoutPsycopg(self) -> None:
        """
        Without psycopg, SQLite locators are read as ever, and a PostgreSQL
        URL says which extra to install: to the daemon, to the admin
        command (which exits 2, as for any C{DB} it cannot read).
        """
        db = os.path.abspath(self.mktemp())
        self.assertEqual(
            json.loads(runPython(_WITHOUT_PSYCOPG, db, env=environment())),
            {
                "sqlite": "sqlite",
                "parse": POSTGRES_EXTRA,
                "daemon": f"--db: {POSTGRES_EXTRA}",
                "admin": [2, f"avatard show: error: argument DB: {POSTGRES_EXTRA}"],
            },
        )

    def test_sqliteImportsNoPostgresDriver(self) -> None:
        """
        Building the daemon on an SQLite file, and listing its users, never
        imports psycopg.
        """
        db = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.assertEqual(
            json.loads(runPython(_DRIVERS_IMPORTED, db, env=environment())), {"status": 0, "psycopg": False}
        )
