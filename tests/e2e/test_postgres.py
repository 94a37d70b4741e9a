"""
End to end on PostgreSQL: what only a real daemon on a real server shows,
besides the suite shared with SQLite (in L{tests.e2e.test_daemon}).
"""

from __future__ import annotations

import os
import signal
import time
from functools import partial

from twisted.trial.unittest import SynchronousTestCase

from tests.admincommand import run
from tests.backends import PostgresBackend, connectPostgres
from tests.daemon import Daemon, receiveLines, waitFor

NOT_FOUND = b"ERR not-found no such login\r\n"


def _listening(node: Daemon) -> bool:
    return "Listening for change notifications" in node.text()


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
        daemon = self.start(db)
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

    def assertNodesSeeChanges(self, db: str, ttl: float, within: float, listening: bool = False) -> None:
        """
        Two nodes on C{db}, caching for C{ttl} seconds (and, if
        C{listening}, once they listen for change notifications): a user
        added, then removed, with the admin command shows in both nodes'
        replies within C{within} seconds, even where the old reply was
        cached.
        """
        nodes = [self.start(db, "--cache-ttl", str(ttl)) for _ in range(2)]
        for node in nodes:
            self.assertEqual(self.ask(node, "late"), NOT_FOUND)
            if listening:
                self.assertTrue(waitFor(partial(_listening, node)), node.text())
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
            while waiting and time.monotonic() - changed < within:
                waiting = [node for node in waiting if self.ask(node, "late") != after]
                time.sleep(0.01)
            self.assertEqual(waiting, [], f"not seen within {within} s")

    def test_nodesSeeChangesWithinTheCacheTTL(self) -> None:
        """
        On a table without change notifications (made by other means than
        C{avatard init}), changes show within the cache's time-to-live.
        """
        self.assertNodesSeeChanges(self.tutorialDatabase(), ttl=1.0, within=1.5)

    def test_nodesSeeChangesAtOnceWithNotifications(self) -> None:
        """
        On a table made by C{avatard init}, a change notification empties
        every node's cache at once: changes show long before the cache's
        time-to-live.
        """
        db = self.newDatabase()
        self.assertEqual(run("init", db).status, 0)
        self.assertNodesSeeChanges(db, ttl=60.0, within=0.5, listening=True)

    def test_repliesAreCachedUntilANotification(self) -> None:
        """
        Once a node listens, its replies are cached however old, beyond
        C{--cache-ttl}: a change made without a notification (triggers off
        for that session) is not seen, even once a node that caches for
        the same TTL (on a table without notifications), asked after it,
        has seen the same change; the next notified change is seen.  The
        node stops cleanly.  (A short TTL keeps the wait short: a node
        whose heartbeat goes unanswered for a second, as on a loaded
        machine, rightly stops vouching for its cache.)
        """
        db = self.newDatabase()
        self.assertEqual(run("init", db).status, 0)
        node = self.start(db, "--cache-ttl", "0.2")
        reference = self.tutorialDatabase()
        byTTL = self.start(reference, "--cache-ttl", "0.2")
        self.assertIn("cache 100000 users for 0.2 s", byTTL.text())
        self.assertEqual(self.ask(node, "ghost"), NOT_FOUND)
        self.assertTrue(waitFor(partial(_listening, node)), node.text())
        self.assertEqual(self.ask(node, "ghost"), NOT_FOUND)
        # Asked after the node: its cached reply expires after the node's
        # would, were the node's kept for the TTL.
        self.assertEqual(self.ask(byTTL, "ghost"), NOT_FOUND)
        for database in (db, reference):
            with connectPostgres(database) as connection:
                connection.execute("SET session_replication_role = replica")
                connection.execute("INSERT INTO users VALUES ('ghost', 'Unseen', 'Not')")
        seen = b"OK Mr 'Not Unseen' is connected under 'ghost'\r\n"
        self.assertTrue(waitFor(lambda: self.ask(byTTL, "ghost") == seen), byTTL.text())
        self.assertEqual(self.ask(node, "ghost"), NOT_FOUND, node.text())
        self.assertEqual(run("add", db, "other", "Any", "Change").status, 0)
        self.assertTrue(waitFor(lambda: self.ask(node, "ghost") == seen, 1))
        self.assertEqual(node.stop(signal.SIGTERM), -signal.SIGTERM)
        log = node.text()
        self.assertIn("avatard stopped", log)
        for phrase in ("Traceback", "Unhandled", "[ERROR]", "#error]", "CRITICAL", "#critical]"):
            self.assertNotIn(phrase, log)
