"""
L{avatard.stores.postgres.store}: the store and its start-up probe, and
the daemon started on them, on a schema of their own on the test server
(see L{tests.backends}).
"""

from __future__ import annotations

import time

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore
from avatard.model import Avatar
from avatard.request.coalesce import CoalescingStore
from avatard.stores import DatabaseError
from avatard.stores.pool import PoolService
from avatard.stores.postgres import redactPassword
from avatard.stores.postgres.store import (
    DatabaseUnavailable,
    PostgresStore,
    postgresPool,
    probe,
)
from avatard.tap import makeService
from tests.backends import PostgresBackend, connectPostgres
from tests.helpers import Connection, ThreadedMemoryReactor, options, poolThreads

UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"


def pooledStore(
    url: str, reactor: ThreadedMemoryReactor, queryTimeout: float = 3.0
) -> tuple[PoolService, PostgresStore]:
    """
    @return: a store reading the database at C{url} through a pool, and the
        service that owns the pool and interrupts the store's queries when
        it stops; not started.
    """
    pool, connections = postgresPool(url, reactor, queryTimeout)
    store = PostgresStore(pool, connections, redactPassword(url), reactor)
    return PoolService(pool, store.interrupt), store


class StoreTests(PostgresBackend, SynchronousTestCase):
    """
    L{PostgresStore} over a running pool, on a table made as the original
    tutorial made it.
    """

    def setUp(self) -> None:
        self.db = self.tutorialDatabase()
        self.reactor = ThreadedMemoryReactor()
        self.service, self.store = pooledStore(self.db, self.reactor)
        self.service.startService()
        self.addCleanup(lambda: self.service.stopService() if self.service.running else None)

    def test_providesTheInterface(self) -> None:
        """
        L{PostgresStore} is an L{IAvatarStore}.
        """
        self.assertTrue(verifyObject(IAvatarStore, self.store))

    def test_lookup(self) -> None:
        """
        A login in the table is found, with its name and forname; an unknown
        one is L{None}; a login that is SQL is only a login.
        """
        self.assertEqual(
            self.reactor.drive(self.store.lookup("esteban")), Avatar("esteban", "Garcia Marquez", "Estebán")
        )
        self.assertIsNone(self.reactor.drive(self.store.lookup("nobody")))
        self.assertIsNone(self.reactor.drive(self.store.lookup("x' OR '1'='1")))

    def test_lookupMany(self) -> None:
        """
        C{lookupMany} answers the logins found, however many it is given
        (each login once, repeats allowed).
        """
        logins = ["yoen", "nobody", "mohamed", "yoen"] + [f"u{i}" for i in range(2000)]
        found = self.reactor.drive(self.store.lookupMany(logins))
        self.assertEqual(sorted(found), ["mohamed", "yoen"])
        self.assertEqual(found["yoen"], Avatar("yoen", "Van der Veld", "Yoen"))

    def test_nullNamesAreNone(self) -> None:
        """
        A row with C{NULL} names (the tutorial's table allows them) is found,
        its names L{None}.
        """
        self.insertRows(self.db, [("ghost", None, None)])
        self.assertEqual(self.reactor.drive(self.store.lookup("ghost")), Avatar("ghost", None, None))

    def test_deadConnectionIsReplaced(self) -> None:
        """
        A pooled connection whose backend was terminated (as a server
        restart or an administrator does) is closed and replaced: the lookup
        that finds it dead is answered through a new connection, and no
        error is logged.
        """
        self.reactor.drive(self.store.lookup("yoen"))
        with connectPostgres(self.db) as connection:
            (terminated,) = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'avatard' AND datname = current_database() "
                "AND pid <> pg_backend_pid() AND query LIKE '%%FROM users%%' "
                "AND client_port IS NOT NULL"
            ).fetchone()
        self.assertGreaterEqual(terminated, 1)
        with capturedLogs() as events:
            self.assertEqual(
                self.reactor.drive(self.store.lookup("mohamed")), Avatar("mohamed", "Al Ghâlib", "Mohamed")
            )
        self.assertEqual(events, [])

    def test_unreachableServerFailsTheLookup(self) -> None:
        """
        A server that refuses connections fails lookups with
        L{DatabaseUnavailable}, naming the database without its password.
        """
        service, store = pooledStore("postgresql://u:s3cret@127.0.0.1:1/d", self.reactor, 1.0)
        service.startService()
        self.addCleanup(service.stopService)
        with self.assertRaises(DatabaseUnavailable) as raised:
            self.reactor.drive(store.lookup("yoen"))
        message = str(raised.exception)
        self.assertTrue(message.startswith("cannot connect to postgresql://u:***@127.0.0.1:1/d: "), message)
        self.assertNotIn("\n", message)

    def test_statementsTimeOutOnTheServer(self) -> None:
        """
        The server cancels a statement of the daemon's connections after
        the query timeout (here a lookup waiting for another session's lock
        on the table), so that none keeps a pool thread for long; the
        connection stays usable.
        """
        service, store = pooledStore(self.db, self.reactor, 0.2)
        service.startService()
        self.addCleanup(service.stopService)
        with connectPostgres(self.db) as locker, locker.transaction():
            locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with self.assertRaises(DatabaseUnavailable) as raised:
                self.reactor.drive(store.lookup("yoen"))
            self.assertLess(time.monotonic() - started, 2.0)
        self.assertIn("statement timeout", str(raised.exception))
        self.assertEqual(self.reactor.drive(store.lookup("yoen")), Avatar("yoen", "Van der Veld", "Yoen"))

    def test_cancelledLookupIsAnsweredAtOnce(self) -> None:
        """
        A cancelled lookup fails at once with L{CancelledError}; the pool
        goes on answering.
        """
        d: Deferred[Avatar | None] = self.store.lookup("yoen")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(
            self.reactor.drive(self.store.lookup("yoen")), Avatar("yoen", "Van der Veld", "Yoen")
        )

    def test_interruptMakesNoNewConnection(self) -> None:
        """
        After L{PostgresStore.interrupt} (the daemon is stopping), lookups
        fail at once, connecting to nothing.
        """
        self.reactor.drive(self.store.lookup("yoen"))
        self.store.interrupt()
        with self.assertRaises(DatabaseUnavailable) as raised:
            self.reactor.drive(self.store.lookup("yoen"))
        self.assertTrue(str(raised.exception).endswith(": the daemon is stopping"))

    def test_stopEndsARunningQuery(self) -> None:
        """
        A query still running when the service stops (here a lookup that
        waits for another session's lock on the table, well within the
        statement timeout) ends at once: the connection it runs on, which
        the service knows of from the pool's C{cp_openfun}, is closed; the
        stop leaves no thread.
        """
        self.successResultOf(self.service.stopService())
        service, store = pooledStore(self.db, self.reactor, queryTimeout=60)
        service.startService()
        with connectPostgres(self.db) as locker, locker.transaction():
            locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            running = store.lookup("yoen")
            self.waitForLockWait()
            began = time.monotonic()
            self.successResultOf(service.stopService())
            self.assertLess(time.monotonic() - began, 5.0)
        self.assertEqual(poolThreads(), [])
        self.assertRaises(DatabaseUnavailable, self.reactor.drive, running)

    def waitForLockWait(self) -> None:
        """
        Wait until a session waits for a lock on this test's C{users} table.
        """
        deadline = time.monotonic() + 10
        with connectPostgres(self.db) as connection:
            while time.monotonic() < deadline:
                (waiting,) = connection.execute(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'users'::regclass AND NOT granted"
                ).fetchone()
                if waiting:
                    return
                time.sleep(0.01)
        self.fail("no lookup waits for the table's lock")

    def test_coalescedLookups(self) -> None:
        """
        Through a L{CoalescingStore}, lookups made while one is at the
        database are answered together.
        """
        store = CoalescingStore(self.store)
        first = store.lookup("yoen")
        others = [store.lookup(login) for login in ("esteban", "nobody", "mohamed")]
        self.assertEqual(self.reactor.drive(first), Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(
            [self.reactor.drive(d) for d in others],
            [Avatar("esteban", "Garcia Marquez", "Estebán"), None, Avatar("mohamed", "Al Ghâlib", "Mohamed")],
        )


class ProbeTests(PostgresBackend, SynchronousTestCase):
    """
    L{probe} and the daemon's start-up on PostgreSQL.
    """

    def located(self, db: str) -> tuple[str, str]:
        """
        @return: the URL C{db}, and how messages name it.
        """
        return db, self.describe(db)

    def test_goodTable(self) -> None:
        """
        A table made by the tutorial's code is fine.
        """
        self.assertIsNone(probe(*self.located(self.tutorialDatabase()), 3.0).unreachable)

    def test_noUsersTable(self) -> None:
        """
        A reachable database without a C{users} table is an error naming
        it, and the daemon does not start.
        """
        db = self.newDatabase()
        name = self.describe(db)
        message = f"database {name} has no users table (create it with: avatard init {name})"
        with self.assertRaises(DatabaseError) as raised:
            probe(*self.located(db), 3.0)
        self.assertEqual(str(raised.exception), message)
        with self.assertRaises(SystemExit) as exited:
            makeService(options("--db", db), ThreadedMemoryReactor())
        self.assertEqual(exited.exception.code, f"avatard: {message}")

    def test_missingColumn(self) -> None:
        """
        A C{users} table without a needed column is an error naming it.
        """
        db = self.newDatabase()
        with connectPostgres(db) as connection:
            connection.execute("CREATE TABLE users (login text unique, name text)")
        with self.assertRaises(DatabaseError) as raised:
            probe(*self.located(db), 3.0)
        self.assertIn(f"the users table in {self.describe(db)} lacks a column: ", str(raised.exception))
        self.assertIn('"forname" does not exist', str(raised.exception))

    def test_unreachableServerStarts(self) -> None:
        """
        A server that cannot be reached is no reason not to start: the
        service is built, a warning logged, and a client is answered
        C{ERR unavailable}, the log naming the cause.
        """
        db = "postgresql://avatard@127.0.0.1:1/users"
        reactor = ThreadedMemoryReactor()
        with capturedLogs() as events:
            service = makeService(options("--db", db, "--port", "tcp:0"), reactor)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["database"], db)
        self.assertIn("Connection refused", events[0]["cause"])
        service.privilegedStartService()
        with capturedLogs():
            service.startService()
        client = Connection(reactor.listened())
        with capturedLogs() as events:
            client.send(b"WHO yoen\n")
            reactor.runUntil(lambda: client.transport.value() != b"")
        self.assertEqual(client.received(), UNAVAILABLE)
        self.assertIn("cannot connect to postgresql://avatard@127.0.0.1:1/users: ", events[-1]["cause"])
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())
        self.assertEqual(poolThreads(), [])


class PasswordWarningTests(SynchronousTestCase):
    """
    A password given in C{--db} is visible in the process list: the daemon
    says so.
    """

    def test_passwordInTheURLIsWarnedAbout(self) -> None:
        """
        With a password in the URL, a warning says where to put it instead,
        and no log event carries it; the lines are logged in the namespace
        they always were.
        """
        db = "postgresql://avatard:s3cret@127.0.0.1:1/users"
        with capturedLogs() as events:
            service = makeService(options("--db", db, "--port", "tcp:0"), ThreadedMemoryReactor())
        self.assertEqual(len(events), 2)
        self.assertIn("give it in ~/.pgpass or PGPASSWORD instead", events[1]["log_format"])
        self.assertNotIn("s3cret", repr(events))
        self.assertEqual({event["log_namespace"] for event in events}, {"avatard.postgres"})
        with capturedLogs():
            self.successResultOf(service.stopService())
