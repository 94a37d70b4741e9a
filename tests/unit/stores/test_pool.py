"""
L{PoolService}: the storage's service owns the pool's lifetime, and makes
queries still running give up when it stops; on SQLite files.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from avatard.model import Avatar
from avatard.stores.sqlite.store import openStorage
from tests.helpers import ThreadedMemoryReactor, pooledStore, poolThreads, tutorialDatabase

ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) "
    "SELECT count(*) FROM c"
)
"""
A query that runs for half a minute, unless interrupted.
"""


class PoolServiceTests(SynchronousTestCase):
    """
    The storage's service owns the pool's lifetime, and makes queries still
    running give up when it stops.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()
        self.storage = openStorage(self.path, self.reactor, 3.0)
        self.service = self.storage.service
        self.pool = self.service.pool
        self.addCleanup(lambda: self.service.stopService() if self.service.running else None)

    def test_stopClosesThePoolAndLeavesNoThread(self) -> None:
        """
        Starting runs the pool's thread; stopping closes the pool and joins
        its thread.
        """
        self.assertEqual(poolThreads(), [])
        self.service.startService()
        self.reactor.drive(self.pool.runInteraction(lambda cursor: cursor.execute("SELECT 1")))
        self.assertEqual(len(poolThreads()), 1)
        self.successResultOf(self.service.stopService())
        self.assertEqual(poolThreads(), [])
        self.assertFalse(self.service.running)

    def test_oneThreadForSQLite(self) -> None:
        """
        The pool runs one thread, however many queries wait: SQLite
        serialises access anyway.
        """
        self.service.startService()
        running = [self.pool.runInteraction(lambda cursor: cursor.execute("SELECT 1")) for _ in range(3)]
        for query in running:
            self.reactor.drive(query)
        self.assertEqual(len(poolThreads()), 1)
        self.assertEqual(self.storage.poolState(), (0, 1))

    def test_poolStateCountsTheThreadRunningAQuery(self) -> None:
        """
        L{IStorage.poolState} tells the threads running a query, and the
        most the pool runs.
        """
        self.service.startService()
        self.assertEqual(self.storage.poolState(), (0, 1))
        started, release = threading.Event(), threading.Event()

        def block(cursor: sqlite3.Cursor) -> None:
            started.set()
            release.wait(10)

        blocked = self.pool.runInteraction(block)
        self.assertTrue(started.wait(10))
        self.assertEqual(self.storage.poolState(), (1, 1))
        release.set()
        self.reactor.drive(blocked)
        self.assertEqual(self.storage.poolState(), (0, 1))

    def runEndlessQuery(self) -> Any:
        """
        Start L{ENDLESS} on the pool's connection.

        @return: its L{Deferred}, once the query runs.
        """
        started = threading.Event()

        def endless(cursor: sqlite3.Cursor) -> object:
            # Told once the statement runs: an interrupt before that would
            # find nothing to interrupt.
            cursor.connection.set_progress_handler(started.set, 1000)
            return cursor.execute(ENDLESS).fetchone()

        running = self.pool.runInteraction(endless)
        self.assertTrue(started.wait(10))
        return running

    def assertStopInterrupts(self, running: Any) -> None:
        """
        Stopping the service ends the running query at once (it fails,
        interrupted), and leaves no thread.
        """
        began = time.monotonic()
        self.successResultOf(self.service.stopService())
        self.assertLess(time.monotonic() - began, 5.0)
        self.assertEqual(poolThreads(), [])
        with self.assertRaisesRegex(sqlite3.OperationalError, "interrupted"):
            self.reactor.drive(running)

    def test_stopInterruptsARunningQuery(self) -> None:
        """
        A query still running when the service stops is interrupted on the
        connection the pool opened (which the service knows of from the
        pool's C{cp_openfun}), rather than holding the stop back until it
        ends.
        """
        self.service.startService()
        self.assertStopInterrupts(self.runEndlessQuery())

    def test_stopInterruptsAQueryOnAReopenedConnection(self) -> None:
        """
        Once the file was replaced, and the pool's connection opened again
        on the new one, a query running on that new connection is
        interrupted when the service stops.
        """
        # A store that reads through the pool only: its connection follows
        # the file at each lookup.
        self.service, store = pooledStore(self.path, self.reactor)
        self.pool = self.service.pool
        self.service.startService()
        self.assertIsNotNone(self.reactor.drive(store.lookup("yoen")))
        os.rename(tutorialDatabase(self.path + ".new", [("newbie", "New", "Nina")]), self.path)
        self.assertEqual(self.reactor.drive(store.lookup("newbie")), Avatar("newbie", "New", "Nina"))
        self.assertStopInterrupts(self.runEndlessQuery())
