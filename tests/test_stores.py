"""
The backend seam: the registry that picks a backend by the scheme of a
C{--db} locator, and the interfaces every backend provides.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.interfaces import IAdmin, IBackend, IDatabase
from avatard.stores import DatabaseError, parseDatabase, register, registered, unregister


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
