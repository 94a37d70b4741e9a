"""
End to end on PostgreSQL: what only a real daemon on a real server shows,
besides the suite shared with SQLite (in L{tests.test_e2e}).
"""

from __future__ import annotations

import os
import signal
import time

from twisted.trial.unittest import SynchronousTestCase

from .backends import PostgresBackend
from .daemon import Daemon, receiveLines
from .test_cli import run

NOT_FOUND = b"ERR not-found no such login\r\n"


class PostgresDaemonTests(PostgresBackend, SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)

    def start(self, db: str, *arguments: str) -> Daemon:
        daemon = Daemon(self.directory, "--db", db, "--port", "tcp:0:interface=127.0.0.1", *arguments)
        self.addCleanup(daemon.stop, signal.SIGKILL)
        return daemon

    def ask(self, daemon: Daemon, login: str) -> bytes:
        with daemon.connect() as s:
            s.sendall(f"WHO {login}\n".encode())
            return receiveLines(s, 1)

    def test_noUsersTableRefusesToStart(self) -> None:
        """
        A server that answers, without a C{users} table in the database,
        stops the daemon at once with one line naming the problem.
        """
        db = self.newDatabase()
        name = self.describe(db)
        daemon = Daemon(self.directory, "--db", db, "--port", "tcp:0:interface=127.0.0.1")
        self.assertEqual(daemon.wait(), 1)
        self.assertEqual(
            daemon.log,
            [f"avatard: database {name} has no users table (create it with: avatard init {name})\n"],
        )

    def test_passwordIsNeverLogged(self) -> None:
        """
        A password in C{--db} appears nowhere in the log, which names the
        database with C{***} and says where the password belongs instead.
        """
        db = self.tutorialDatabase().replace("postgresql://postgres@", "postgresql://postgres:s3cret@", 1)
        daemon = self.start(db)
        self.assertEqual(self.ask(daemon, "yoen"), b"OK Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n")
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        log = daemon.text()
        self.assertNotIn("s3cret", log)
        self.assertIn("postgresql://postgres:***@", log)
        self.assertIn("give it in ~/.pgpass or PGPASSWORD instead", log)

    def test_nodesSeeAdminChangesWithinTheCacheTTL(self) -> None:
        """
        Two nodes on one database: a user added, then removed, with the
        admin command shows in both nodes' replies within the cache's
        time-to-live, even where the old reply was cached.
        """
        db = self.tutorialDatabase()
        ttl = 1.0
        nodes = [self.start(db, "--cache-ttl", str(ttl)) for _ in range(2)]
        expected = b"OK Mr 'Jo Comer' is connected under 'late'\r\n"
        for before, command, after in (
            (NOT_FOUND, ("add", db, "late", "Comer", "Jo"), expected),
            (expected, ("remove", db, "late"), NOT_FOUND),
        ):
            for node in nodes:
                self.assertEqual(self.ask(node, "late"), before)
            self.assertEqual(run(*command).status, 0)
            changed = time.monotonic()
            waiting = list(nodes)
            while waiting and time.monotonic() - changed < ttl + 0.5:
                waiting = [node for node in waiting if self.ask(node, "late") != after]
                time.sleep(0.02)
            self.assertEqual(waiting, [], f"not seen within {ttl} s")
