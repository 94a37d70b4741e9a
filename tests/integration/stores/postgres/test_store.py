"""
PostgreSQL: reading C{postgresql://} URLs, the store and its start-up
probe, the daemon's service tree and the admin commands' particulars, on
a schema of their own on the test server (see L{tests.backends}).
"""

from __future__ import annotations

import time
import uuid

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore, IDatabase
from avatard.model import Avatar
from avatard.request.coalesce import CoalescingStore
from avatard.stores import DatabaseError, parseDatabase
from avatard.stores import postgres as postgresBackend
from avatard.stores.pool import PoolService
from avatard.stores.postgres import POSTGRES_EXTRA, redactPassword
from avatard.stores.postgres.store import (
    TCP_USER_TIMEOUT_MS,
    DatabaseUnavailable,
    PostgresStore,
    connectArguments,
    postgresPool,
    probe,
)
from avatard.tap import makeService
from tests.backends import PostgresBackend, connectPostgres
from tests.helpers import ThreadedMemoryReactor, poolThreads
from tests.unit.admin.test_commands import run
from tests.unit.service.test_tree import options


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


class ParseTests(SynchronousTestCase):
    """
    L{parseDatabase} on C{postgresql://} URLs.
    """

    def test_postgresqlURL(self) -> None:
        """
        A C{postgresql://} or C{postgres://} URL, in any case, names a
        PostgreSQL database, kept as given.
        """
        for url in (
            "postgresql://u@db.example:5433/users?sslmode=require",
            "postgres://u@h/d",
            "PostgreSQL://h/d",
        ):
            database = parseDatabase(url)
            self.assertTrue(verifyObject(IDatabase, database))
            self.assertEqual((database.backend.name, database.describe()), ("postgresql", url))

    def test_passwordIsRedacted(self) -> None:
        """
        C{describe()} and C{repr()} never show the password.
        """
        database = parseDatabase("postgresql://avatard:s3cret@db:5432/users?sslmode=require")
        self.assertEqual(database.describe(), "postgresql://avatard:***@db:5432/users?sslmode=require")
        self.assertNotIn("s3cret", repr(database))
        self.assertEqual(redactPassword("postgresql://avatard@db/users"), "postgresql://avatard@db/users")

    def test_noDatabaseName(self) -> None:
        """
        A URL without a database name is refused, with an example.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("postgresql://u:pw@host:5432/")
        self.assertEqual(
            str(raised.exception),
            "the PostgreSQL URL postgresql://u:***@host:5432/ names no database, "
            "as in postgresql://user@host:5432/dbname",
        )

    def test_badPort(self) -> None:
        """
        A port that is not a number is refused, the password redacted.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("postgresql://u:pw@host:port/db")
        self.assertIn("cannot read the PostgreSQL URL postgresql://u:***@host:port/db", str(raised.exception))

    def test_driverMissing(self) -> None:
        """
        Without the driver, a PostgreSQL URL says which extra to install.
        """
        self.patch(postgresBackend, "driverInstalled", lambda: False)
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("postgresql://u@h/d")
        self.assertEqual(str(raised.exception), POSTGRES_EXTRA)

    def test_connectArgumentsKeepTheURLs(self) -> None:
        """
        The daemon's connections get a connect timeout derived from the
        query timeout and a TCP user timeout, unless the URL sets its own.
        """
        self.assertEqual(
            connectArguments("postgresql://u@h/d", 0.5),
            {
                "autocommit": True,
                "connect_timeout": 2,
                "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                "application_name": "avatard",
            },
        )
        given = "postgresql://u@h/d?connect_timeout=9&tcp_user_timeout=1&application_name=x"
        self.assertEqual(connectArguments(given, 5.5), {"autocommit": True})
        self.assertEqual(connectArguments("postgresql://u@h/d", 5.5)["connect_timeout"], 6)


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

    def test_nullNamesAreEmpty(self) -> None:
        """
        A row with C{NULL} names (the tutorial's table allows them) is found,
        its names empty.
        """
        self.insertRows(self.db, [("ghost", None, None)])
        self.assertEqual(self.reactor.drive(self.store.lookup("ghost")), Avatar("ghost", "", ""))

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
        the query timeout, so that none keeps a pool thread for long; the
        connection stays usable.
        """
        service, store = pooledStore(self.db, self.reactor, 0.2)
        service.startService()
        self.addCleanup(service.stopService)
        started = time.monotonic()
        with self.assertRaises(DatabaseUnavailable) as raised:
            self.reactor.drive(store._run(lambda cursor, _: cursor.execute("SELECT pg_sleep(5)"), None))
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
        A query still running when the service stops (here one that would
        run for half a minute, below the statement timeout) ends at once:
        the connection it runs on, which the service knows of from the
        pool's C{cp_openfun}, is closed; the stop leaves no thread.
        """
        self.successResultOf(self.service.stopService())
        service, store = pooledStore(self.db, self.reactor, queryTimeout=60)
        service.startService()
        # Told apart from the queries of other runs, which the server may
        # still be running after their connections closed.
        query = f"SELECT pg_sleep(30) -- {uuid.uuid4().hex}"
        running = store._run(lambda cursor, _: cursor.execute(query), None)
        self.waitForQuery(query)
        began = time.monotonic()
        self.successResultOf(service.stopService())
        self.assertLess(time.monotonic() - began, 5.0)
        self.assertEqual(poolThreads(), [])
        self.assertRaises(DatabaseUnavailable, self.reactor.drive, running)

    def waitForQuery(self, query: str) -> None:
        """
        Wait until the server runs C{query} for avatard.
        """
        deadline = time.monotonic() + 10
        with connectPostgres(self.db) as connection:
            while time.monotonic() < deadline:
                (running,) = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'avatard' "
                    "AND state = 'active' AND query = %s",
                    (query,),
                ).fetchone()
                if running:
                    return
                time.sleep(0.01)
        self.fail(f"{query} is not running")

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
        service is built, a warning logged, and nothing connects until a
        lookup.
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
        store = service.server.factory.responder.whoPath.store
        with self.assertRaises(DatabaseUnavailable):
            reactor.drive(store.lookup("yoen"))
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
        self.addCleanup(service.storage.stopService)
        self.assertEqual(len(events), 2)
        self.assertIn("give it in ~/.pgpass or PGPASSWORD instead", events[1]["log_format"])
        self.assertNotIn("s3cret", repr(events))
        self.assertEqual({event["log_namespace"] for event in events}, {"avatard.postgres"})


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
