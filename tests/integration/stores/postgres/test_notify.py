"""
L{ChangeListener}: PostgreSQL's change notifications, on a memory reactor
whose reads the tests deliver themselves, against the test server.
"""

from __future__ import annotations

import select
import time
import uuid
from collections.abc import Sequence

from twisted.logger import LogEvent, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IChangeWatch, IStorage, WouldBlock
from avatard.request.cache import CHECK_INTERVAL
from avatard.service.tree import AvatardService
from avatard.stores import parseDatabase
from avatard.stores.pool import PoolService
from avatard.stores.postgres.notify import DEADLINE, HEARTBEAT, ChangeListener
from avatard.stores.postgres.store import postgresPool, probe
from avatard.tap import serviceTree
from tests.admincommand import run
from tests.backends import PostgresBackend, connectPostgres
from tests.helpers import TUTORIAL_REPLIES, Connection, ThreadedMemoryReactor, options, poolThreads

LISTENER = "avatard-listener-test"
"""
The start of the application name of the tests' listening connections.
"""


class ListenerTests(PostgresBackend, SynchronousTestCase):
    def setUp(self) -> None:
        self.db = self.newDatabase()
        self.assertEqual(run("init", self.db).status, 0)
        self.reactor = ThreadedMemoryReactor()
        self.applicationName = f"{LISTENER}-{uuid.uuid4().hex[:12]}"
        pool, _ = postgresPool(self.db, self.reactor, 3.0)
        self.service = PoolService(pool)
        self.listener = ChangeListener(
            self.db,
            self.describe(self.db),
            self.reactor,
            pool.threadpool,
            {"autocommit": True, "application_name": self.applicationName},
            1.0,
            30.0,
        )
        self.listener.setServiceParent(self.service)
        self.addCleanup(lambda: self.service.stopService() if self.service.running else None)

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
        Start the pool's service, which starts the listener, and run what
        its pool thread hands back until it vouches for a version.

        @return: the version then.
        """
        self.assertIsNone(self.version())
        self.service.startService()
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
                (self.applicationName,),
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
        says so once (in the namespace its lines always had), never
        vouches, and tries again only after a long while.
        """
        with connectPostgres(self.db) as connection:
            connection.execute("DROP TRIGGER avatard_users_notify ON users")
        self.service.startService()
        with capturedLogs() as events:
            # Until the listener has given up and scheduled its next try.
            self.reactor.runUntil(lambda: bool(self.reactor.getDelayedCalls()))
        self.assertIsNone(self.version())
        self.assertIn("has no change notification trigger", events[0]["cause"])
        self.assertEqual(events[0]["log_namespace"], "avatard.pgnotify.ChangeListener")
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

    def test_listensOnceStartedNotWhenAsked(self) -> None:
        """
        The listener listens from when it is started, without being asked
        for a version; asked before it is started, it cannot tell, and
        does not start.
        """
        for _ in range(3):
            self.assertIsNone(self.version())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertTrue(self.reactor.fromThreads.empty())
        self.assertFalse(self.listener.running)
        self.service.startService()
        self.assertTrue(self.listener.running)
        self.reactor.runUntil(lambda: bool(self.reactor.readers))
        self.assertIsNotNone(self.version())

    def test_stopCloses(self) -> None:
        """
        Once stopped (with the pool's service, before the pool closes),
        nothing is watched or scheduled, the version cannot be told, and
        the listening connection is gone from the server.
        """
        self.listen()
        self.successResultOf(self.service.stopService())
        self.assertFalse(self.listener.running)
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertIsNone(self.version())
        deadline = time.monotonic() + 5
        with connectPostgres(self.db) as connection:
            while True:
                (listening,) = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (self.applicationName,),
                ).fetchone()
                if listening == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        self.assertEqual(listening, 0)


class WiringTests(PostgresBackend, SynchronousTestCase):
    """
    How the daemon on PostgreSQL keeps replies: until a change notification
    says otherwise, or for the cache TTL on a table that sends none.
    """

    def setUp(self) -> None:
        self.reactor = ThreadedMemoryReactor()

    def start(self, db: str, *argv: str) -> tuple[AvatardService, Connection, Sequence[LogEvent]]:
        """
        Start the daemon on C{db} with C{argv}, and connect a client to it.

        @return: the daemon, the client, and what the daemon logged.
        """
        with capturedLogs() as events:
            service = serviceTree(options("--db", db, "--port", "tcp:0", *argv), self.reactor)
            service.privilegedStartService()
            service.startService()
        return service, Connection(self.reactor.listened()), events

    def ask(self, client: Connection, login: str) -> bytes:
        """
        @return: the reply to C{WHO login}, once the pool has answered.
        """
        client.send(b"WHO %s\n" % login.encode())
        received = [b""]

        def answered() -> bool:
            received[0] += client.received()
            return received[0].endswith(b"\r\n")

        self.reactor.runUntil(answered)
        return received[0]

    def rename(self, db: str, login: str, name: str) -> None:
        with connectPostgres(db) as connection:
            connection.execute("UPDATE users SET name = %s WHERE login = %s", (name, login))

    def stop(self, service: AvatardService, client: Connection) -> None:
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(poolThreads(), [])

    def test_initialisedTableIsWatchedFromTheStart(self) -> None:
        """
        On a table made by C{avatard init}, the daemon listens for change
        notifications from when it starts, before any request, and keeps
        replies until the database changes: a change shows in the next
        reply once it is notified, however long the cache TTL.
        """
        db = self.newDatabase()
        run("init", "--demo", db)
        service, client, events = self.start(db, "--cache-ttl", "3600")
        self.assertIn("users until the database changes", events[-1]["details"])
        with capturedLogs() as events:
            self.reactor.runUntil(lambda: bool(self.reactor.readers))
        self.assertIn(
            "Listening for change notifications", [e["log_format"].split(" from")[0] for e in events]
        )
        self.assertEqual(self.ask(client, "yoen"), TUTORIAL_REPLIES["yoen"])
        self.rename(db, "yoen", "Veld")
        (listening,) = self.reactor.readers
        ready, _, _ = select.select([listening], [], [], 5.0)
        self.assertTrue(ready, "no notification")
        listening.doRead()
        self.reactor.advance(CHECK_INTERVAL)
        self.assertEqual(self.ask(client, "yoen"), b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n")
        self.stop(service, client)

    def test_storageOfAWatchedTable(self) -> None:
        """
        What a database with change notifications opens is an
        L{IStorage} whose watch listens while its service runs, and stops
        with it.
        """
        db = self.newDatabase()
        run("init", db)
        database = parseDatabase(db)
        with capturedLogs():
            database.check(3.0)
        storage = database.open(self.reactor, 3.0)
        self.assertTrue(verifyObject(IStorage, storage))
        watch = storage.watch
        assert watch is not None
        self.assertRaises(WouldBlock, watch.version)
        storage.service.startService()
        with capturedLogs():
            self.reactor.runUntil(lambda: bool(self.reactor.readers))
        watch.version()
        with capturedLogs():
            self.successResultOf(storage.service.stopService())
        self.assertRaises(WouldBlock, watch.version)
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(poolThreads(), [])

    def test_tableWithoutTriggerIsCachedForTheTTL(self) -> None:
        """
        On a table made by other means, without the trigger, replies are
        cached for C{--cache-ttl} seconds.
        """
        db = self.tutorialDatabase()
        self.assertEqual(
            probe(db, self.describe(db), 3.0).silent,
            "the users table has no change notification trigger (avatard init adds it)",
        )
        service, client, events = self.start(db, "--cache-ttl", "1")
        self.assertIn("users for 1 s", events[-1]["details"])
        self.assertEqual(self.ask(client, "yoen"), TUTORIAL_REPLIES["yoen"])
        self.rename(db, "yoen", "Veld")
        self.assertEqual(self.ask(client, "yoen"), TUTORIAL_REPLIES["yoen"])
        self.reactor.advance(1)
        self.assertEqual(self.ask(client, "yoen"), b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n")
        self.stop(service, client)
