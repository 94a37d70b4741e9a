"""
The backend seam: the registry that picks a backend by the scheme of a
C{--db} locator, the interfaces every backend provides, and a backend kept
in memory (L{tests.memorybackend}) used by the daemon and the admin command
through the same path as the real ones.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.admin.csvio import DEMO_USERS
from avatard.interfaces import (
    IAdmin,
    IAvatarStore,
    IBackend,
    IChangeWatch,
    IDatabase,
    IImmediateLookup,
    IStorage,
)
from avatard.model import Avatar
from avatard.request.cache import CHECK_INTERVAL
from avatard.stores import DatabaseError, parseDatabase, register, registered, unregister
from avatard.tap import makeService
from tests.admincommand import run
from tests.helpers import TUTORIAL_REPLIES, Connection, ThreadedMemoryReactor, options
from tests.memorybackend import MemoryBackend


@implementer(IBackend)
class RecordingBackend:
    """
    A backend that records the locators it is given, and names them with
    the database of another backend.
    """

    name = "recording"

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes
        self.parsed: list[str] = []

    def parse(self, locator: str) -> IDatabase:
        self.parsed.append(locator)
        return parseDatabase("/recorded")


class RegistryTests(SynchronousTestCase):
    """
    L{parseDatabase} hands a locator to the backend registered for its
    scheme.
    """

    def registered(self, backend: IBackend) -> None:
        register(backend)
        self.addCleanup(unregister, backend)

    def test_schemePicksTheBackend(self) -> None:
        """
        A locator goes, whole, to the backend registered for the text before
        its first C{:}, in any case; and to no other backend.
        """
        backend = RecordingBackend("fake", "counterfeit")
        self.registered(backend)
        for locator in ("fake:one", "FAKE://two", "counterfeit:three:four"):
            self.assertEqual(parseDatabase(locator).describe(), "sqlite:/recorded")
        self.assertEqual(backend.parsed, ["fake:one", "FAKE://two", "counterfeit:three:four"])
        self.assertEqual(parseDatabase("fakes:x").backend.name, "sqlite")
        self.assertEqual(backend.parsed, ["fake:one", "FAKE://two", "counterfeit:three:four"])

    def test_builtInBackends(self) -> None:
        """
        SQLite serves plain paths and C{sqlite:}; PostgreSQL
        C{postgresql://} and C{postgres://}; both are registered.
        """
        self.assertEqual(
            [(b.name, tuple(b.schemes)) for b in registered()][:2],
            [("sqlite", ("", "sqlite")), ("postgresql", ("postgresql", "postgres"))],
        )
        cases = [
            ("users.sqlite", "sqlite", f"sqlite:{os.path.abspath('users.sqlite')}"),
            ("./odd:name", "sqlite", f"sqlite:{os.path.abspath('odd:name')}"),
            ("sqlite:/var/lib/a.db", "sqlite", "sqlite:/var/lib/a.db"),
            ("postgres://u:pw@h/d", "postgresql", "postgres://u:***@h/d"),
        ]
        for locator, backend, description in cases:
            database = parseDatabase(locator)
            self.assertEqual((database.backend.name, database.describe()), (backend, description))

    def test_unknownSchemeIsRefusedByName(self) -> None:
        """
        A URL whose scheme no backend serves is refused, naming the scheme
        and what can be given instead.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("mysql://db/users")
        self.assertEqual(
            str(raised.exception),
            "unsupported database URL scheme 'mysql': give an SQLite file path or a postgresql:// URL",
        )

    def test_unregisteredSchemeNamesAFile(self) -> None:
        """
        Without a backend for its scheme, C{memory:x} is the SQLite file of
        that name, as before the memory backend was registered and once it
        is not any more.
        """
        backend = MemoryBackend()
        self.assertEqual(parseDatabase("memory:x").backend.name, "sqlite")
        register(backend)
        try:
            self.assertIs(parseDatabase("memory:x").backend, backend)
        finally:
            unregister(backend)
        self.assertEqual(parseDatabase("memory:x").backend.name, "sqlite")

    def test_schemeServedOnce(self) -> None:
        """
        A scheme served by a backend already cannot be taken by another,
        which is then not registered at all.
        """
        other = RecordingBackend("other", "sqlite")
        with self.assertRaises(ValueError) as raised:
            register(other)
        self.assertEqual(str(raised.exception), "the scheme 'sqlite' is served by the sqlite backend already")
        self.assertEqual(parseDatabase("other:x").backend.name, "sqlite")

    def test_emptyIsRefused(self) -> None:
        """
        An empty locator names nothing.
        """
        with self.assertRaises(DatabaseError) as raised:
            parseDatabase("")
        self.assertEqual(str(raised.exception), "the database name is empty")


class ProvidersTests(SynchronousTestCase):
    """
    What each backend provides is what the seam says.
    """

    def assertProviders(self, locator: str) -> None:
        database = parseDatabase(locator)
        self.assertTrue(verifyObject(IDatabase, database))
        self.assertTrue(verifyObject(IBackend, database.backend))
        self.assertTrue(verifyObject(IAdmin, database.admin()))

    def test_sqlite(self) -> None:
        """
        The SQLite backend, its databases and their admin.
        """
        self.assertProviders(os.path.abspath(self.mktemp()))

    def test_postgres(self) -> None:
        """
        The PostgreSQL backend, its databases and their admin (nothing
        connects).
        """
        self.assertProviders("postgresql://u@127.0.0.1:1/d")

    def test_memory(self) -> None:
        """
        The memory backend, its databases, their admin and storage.
        """
        backend = MemoryBackend()
        register(backend)
        self.addCleanup(unregister, backend)
        self.assertProviders("memory:x")
        database = parseDatabase("memory:x")
        database.admin().init(())
        storage = database.open(MemoryReactorClock(), 3.0)
        self.assertTrue(verifyObject(IStorage, storage))
        for interface in (IAvatarStore, IImmediateLookup, IChangeWatch):
            self.assertTrue(verifyObject(interface, storage.store))


class MemoryBackendTests(SynchronousTestCase):
    """
    The daemon and the admin command on the memory backend, registered as
    the real backends are.
    """

    def setUp(self) -> None:
        self.backend = MemoryBackend()
        register(self.backend)
        self.addCleanup(unregister, self.backend)

    def test_daemonAnswersFromTheMemoryBackend(self) -> None:
        """
        C{twistd avatard --db memory:NAME} builds the daemon on the memory
        backend's storage: it serves that database, answers C{WHO} from it,
        keeps replies until its data changes, reports its pool (it has
        none), and starts and stops its service.
        """
        parseDatabase("memory:directory").admin().init(DEMO_USERS)
        table = self.backend.tables["directory"]
        reactor = ThreadedMemoryReactor()
        service = makeService(options("--db", "memory:directory", "--port", "tcp:8787"), reactor)
        self.assertEqual(table.served, [])
        service.privilegedStartService()
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(events[-1]["database"], "memory:directory")
        self.assertEqual(table.served, ["started"])
        self.assertEqual(len(reactor.tcpServers), 1)
        client = Connection(reactor.listened())
        client.send(b"WHO yoen\nWHO nobody\n")
        self.assertEqual(client.received(), TUTORIAL_REPLIES["yoen"] + b"ERR not-found no such login\r\n")
        parseDatabase("memory:directory").admin().add(Avatar("nobody", "Body", "No"))
        reactor.advance(CHECK_INTERVAL)
        client.send(b"WHO nobody\nSTATS\n")
        reply, stats = client.received().split(b"\r\n")[:2]
        self.assertEqual(reply, b"OK Mr 'No Body' is connected under 'nobody'")
        self.assertIn(b" pool.busy=0 pool.size=0", stats)
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())
        self.assertEqual(table.served, ["started", "stopped"])

    def test_daemonRefusesAMissingDatabase(self) -> None:
        """
        The memory backend's check stops the daemon before it starts, with
        one line.
        """
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", "memory:missing"), MemoryReactorClock())
        self.assertEqual(
            raised.exception.code,
            "avatard: database memory:missing does not exist (create it with: avatard init memory:missing)",
        )

    def test_adminCommandManagesTheMemoryBackend(self) -> None:
        """
        C{avatard init}, C{add}, C{show}, C{import}, C{list} and C{remove}
        on C{memory:NAME} go to the memory backend's admin, and write what
        they do as on any database.
        """
        db = "memory:admin"
        self.assertEqual(
            run("show", db, "yoen").err,
            f"avatard: database {db} does not exist (create it with: avatard init {db})\n",
        )
        self.assertEqual(run("init", "--demo", db).out, f"created {db} with 3 demo users\n")
        self.assertEqual(run("init", "--demo", db).out, f"{db} is ready; 0 demo users added\n")
        self.assertEqual(run("add", db, "jdoe", "Doe", "Jane").out, "added jdoe\n")
        self.assertEqual(
            run("add", db, "a b", "Doe", "Jane").err, "avatard: login 'a b': login contains white space\n"
        )
        self.assertEqual(run("show", db, "jdoe").out, "login: jdoe\nname: Doe\nforname: Jane\n")
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write("login,name,forname\nyoen,Veld,Yoen\nzed,Z,Zed\n")
        self.assertEqual(run("import", db, path).out, f"imported 2 users from {path}: 1 added, 1 updated\n")
        self.assertEqual(run("remove", db, "esteban").out, "removed esteban\n")
        self.assertEqual(
            run("list", db).out,
            "login,name,forname\njdoe,Doe,Jane\nmohamed,Al Ghâlib,Mohamed\nyoen,Veld,Yoen\nzed,Z,Zed\n",
        )
        result = run("remove", db, "esteban")
        self.assertEqual((result.status, result.err), (1, f"avatard: no login 'esteban' in {db}\n"))
