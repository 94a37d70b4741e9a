"""
L{ChangeListener}: PostgreSQL's change notifications, on a memory reactor
whose reads the tests deliver themselves, against the test server.
"""

from __future__ import annotations

import select

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.database import PostgresDatabase, parseDatabase
from avatard.interfaces import IChangeWatch, WouldBlock
from avatard.pgnotify import DEADLINE, HEARTBEAT, ChangeListener
from avatard.pool import ConnectionPoolService
from avatard.postgres import Probed, postgresPool, probe
from avatard.request.cache import ReplyCache, WatchedReplyCache
from avatard.tap import makeService

from .backends import PostgresBackend, connectPostgres
from .helpers import ThreadedMemoryReactor, poolOf
from .test_cli import run
from .test_service import options

LISTENER = "avatard-listener-test"


class ListenerTests(PostgresBackend, SynchronousTestCase):
    def setUp(self) -> None:
        self.db = self.newDatabase()
        self.assertEqual(run("init", self.db).status, 0)
        self.reactor = ThreadedMemoryReactor()
        database = parseDatabase(self.db)
        assert isinstance(database, PostgresDatabase)
        self.database = database
        self.service = ConnectionPoolService(postgresPool(database, self.reactor, 3.0))
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.listener = ChangeListener(
            database,
            self.reactor,
            self.service.pool.threadpool,
            {"autocommit": True, "application_name": LISTENER},
            1.0,
            30.0,
        )
        self.addCleanup(self.listener.stop)

    def version(self) -> int | None:
        try:
            return self.listener.version()
        except WouldBlock:
            return None

    def listening(self) -> bool:
        """
        @return: whether the listener vouches for a version.
        """
        return self.version() is not None

    def listen(self) -> int:
        """
        Ask for the version, which starts the listener, and run what its
        pool thread hands back until it vouches for one.

        @return: the version then.
        """
        self.assertIsNone(self.version())
        self.reactor.runUntil(self.listening)
        version = self.version()
        assert version is not None
        return version

    def deliver(self, timeout: float = 5.0) -> None:
        """
        Wait until the listening connection has something to read, and let
        the listener read it, as the reactor would.
        """
        (socket,) = self.reactor.readers
        ready, _, _ = select.select([socket], [], [], timeout)
        self.assertTrue(ready, "nothing to read")
        socket.doRead()

    def test_providesTheInterface(self) -> None:
        """
        L{ChangeListener} is an L{IChangeWatch}.
        """
        self.assertTrue(verifyObject(IChangeWatch, self.listener))

    def test_aChangeMovesTheVersionOn(self) -> None:
        """
        The version cannot be told until the listener listens; then a
        change committed by the admin command moves it on.
        """
        before = self.listen()
        self.assertEqual(self.version(), before)
        self.assertEqual(run("add", self.db, "late", "Comer", "Jo").status, 0)
        self.deliver()
        after = self.version()
        assert after is not None
        self.assertGreater(after, before)

    def test_unansweredHeartbeatStopsVouching(self) -> None:
        """
        While the server answers heartbeats, the version holds; when one is
        not answered within L{DEADLINE}, the listener no longer vouches for
        it and listens again after its retry delay.
        """
        before = self.listen()
        self.reactor.advance(HEARTBEAT)
        self.deliver()
        self.reactor.advance(DEADLINE - HEARTBEAT / 2)
        self.assertEqual(self.version(), before)
        self.reactor.advance(HEARTBEAT)
        with capturedLogs() as events:
            self.reactor.advance(DEADLINE)
        self.assertIsNone(self.version())
        self.assertEqual(self.reactor.readers, set())
        self.assertIn("no answer within", events[0]["cause"])
        self.reactor.advance(1.0)
        self.reactor.runUntil(self.listening)
        after = self.version()
        assert after is not None
        self.assertGreater(after, before)

    def test_terminatedConnectionIsReplaced(self) -> None:
        """
        A listening connection terminated on the server is noticed at once:
        the version cannot be told until the listener listens again, and
        then it has moved on.
        """
        before = self.listen()
        with connectPostgres(self.db) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (LISTENER,),
            )
        with capturedLogs() as events:
            # The server's farewell, then the end of the connection.
            for _ in range(3):
                if self.reactor.readers:
                    self.deliver()
        self.assertIsNone(self.version())
        self.assertEqual(len(events), 1)
        self.reactor.advance(1.0)
        self.reactor.runUntil(self.listening)
        after = self.version()
        assert after is not None
        self.assertGreater(after, before)

    def test_tableWithoutTrigger(self) -> None:
        """
        A table without the trigger sends no notifications: the listener
        says so once, never vouches, and tries again only after a long
        while.
        """
        with connectPostgres(self.db) as connection:
            connection.execute("DROP TRIGGER avatard_users_notify ON users")
        self.assertIsNone(self.version())
        with capturedLogs() as events:
            # Until the listener has given up and scheduled its next try.
            self.reactor.runUntil(lambda: bool(self.reactor.getDelayedCalls()))
        self.assertIsNone(self.version())
        self.assertIn("has no change notification trigger", events[0]["cause"])
        self.assertEqual([call.getTime() for call in self.reactor.getDelayedCalls()], [30.0])

    def test_tableMadeAgainMovesTheVersionOn(self) -> None:
        """
        A table dropped and made again (as a restore from a dump does)
        notifies nothing, but the next heartbeat sees a new trigger and
        moves the version on.
        """
        before = self.listen()
        with connectPostgres(self.db) as connection:
            connection.execute("DROP TABLE users")
        self.assertEqual(run("init", self.db).status, 0)
        self.reactor.advance(HEARTBEAT)
        self.deliver()
        after = self.version()
        assert after is not None
        self.assertGreater(after, before)

    def test_triggerDroppedStopsListening(self) -> None:
        """
        When the trigger is dropped, the next heartbeat says so: the
        listener stops vouching, and tries again only after a long while.
        """
        self.listen()
        with connectPostgres(self.db) as connection:
            connection.execute("DROP TRIGGER avatard_users_notify ON users")
        self.reactor.advance(HEARTBEAT)
        with capturedLogs() as events:
            self.deliver()
        self.assertIsNone(self.version())
        self.assertIn("has no change notification trigger", events[0]["cause"])
        self.assertEqual([call.getTime() for call in self.reactor.getDelayedCalls()], [30.0 + HEARTBEAT])

    def test_stopCloses(self) -> None:
        """
        After L{ChangeListener.stop}, nothing is watched or scheduled, and
        the version cannot be told.
        """
        self.listen()
        self.listener.stop()
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertIsNone(self.version())


class WiringTests(PostgresBackend, SynchronousTestCase):
    """
    Which cache the daemon uses on PostgreSQL.
    """

    def cacheOf(self, db: str) -> object:
        with capturedLogs():
            service = makeService(options("--db", db, "--port", "tcp:0"), ThreadedMemoryReactor())
        self.addCleanup(poolOf(service).close)
        return service.server.factory.responder.cache

    def test_initialisedTableIsWatched(self) -> None:
        """
        On a table made by C{avatard init}, replies are cached until a
        change notification says otherwise.
        """
        db = self.newDatabase()
        run("init", db)
        database = parseDatabase(db)
        assert isinstance(database, PostgresDatabase)
        self.assertEqual(probe(database, 3.0), Probed(None, None))
        cache = self.cacheOf(db)
        assert isinstance(cache, WatchedReplyCache)
        self.assertIsInstance(cache.watch, ChangeListener)

    def test_tableWithoutTriggerIsCachedForTheTTL(self) -> None:
        """
        On a table made by other means, without the trigger, replies are
        cached for C{--cache-ttl} seconds.
        """
        db = self.tutorialDatabase()
        database = parseDatabase(db)
        assert isinstance(database, PostgresDatabase)
        self.assertEqual(
            probe(database, 3.0).silent,
            "the users table has no change notification trigger (avatard init adds it)",
        )
        self.assertIsInstance(self.cacheOf(db), ReplyCache)
