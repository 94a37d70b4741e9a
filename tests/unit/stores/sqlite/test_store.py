"""
L{avatard.stores.sqlite.store}: the SQLite store, on real temporary
database files: lookups, odd rows, faults and reads in the reactor thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IAvatarStore, IChangeWatch, IImmediateLookup, IStorage, WouldBlock
from avatard.model import Avatar
from avatard.stores import parseDatabase
from avatard.stores.sqlite.store import PAGE_CACHE_KIB, READ_SPAN, DatabaseGone, SQLiteStore
from tests.helpers import ThreadedMemoryReactor, pooledStore, poolThreads, tutorialDatabase


class StorageTests(SynchronousTestCase):
    """
    What the daemon reads an SQLite file through.
    """

    def test_storageProvidesTheInterface(self) -> None:
        """
        What an SQLite database opens is an L{IStorage}, whose store reads
        in the reactor thread and tells when the data changes.
        """
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        reactor = ThreadedMemoryReactor()
        storage = parseDatabase(path).open(reactor, 3.0)
        self.addCleanup(storage.service.stopService)
        self.assertTrue(verifyObject(IStorage, storage))
        self.assertTrue(verifyObject(IImmediateLookup, storage.store))
        assert storage.watch is not None
        self.assertTrue(verifyObject(IChangeWatch, storage.watch))
        before = storage.watch.version()
        reactor.advance(READ_SPAN)
        connection = sqlite3.connect(path)
        connection.execute("DELETE FROM users WHERE login = 'yoen'")
        connection.commit()
        connection.close()
        self.assertNotEqual(storage.watch.version(), before)
        self.assertIsNone(self.successResultOf(storage.store.lookup("yoen")))


class StoreTests(SynchronousTestCase):
    """
    L{SQLiteStore} over a running pool on a database made by the original
    tutorial's code.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(self.mktemp() + ".sqlite")
        self.reactor = ThreadedMemoryReactor()
        self.service, self.store = pooledStore(self.path, self.reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def test_providesTheInterface(self) -> None:
        """
        L{SQLiteStore} is an L{IAvatarStore}.
        """
        self.assertTrue(verifyObject(IAvatarStore, self.store))
        self.assertTrue(verifyObject(IImmediateLookup, self.store))

    def test_lookupFindsTutorialUser(self) -> None:
        """
        A login in the table is found, with its name and forname.
        """
        self.assertEqual(
            self.reactor.drive(self.store.lookup("esteban")),
            Avatar("esteban", "Garcia Marquez", "Estebán"),
        )

    def test_lookupOfUnknownLoginIsNone(self) -> None:
        """
        An unknown login is L{None}, not an error.
        """
        self.assertIsNone(self.reactor.drive(self.store.lookup("nobody")))

    def test_lookupIsParameterised(self) -> None:
        """
        SQL syntax and wildcards in a login are only characters of it.
        """
        for login in ("' OR '1'='1", "%", "_oen", "y*", "yoen'; DROP TABLE users; --"):
            self.assertIsNone(self.reactor.drive(self.store.lookup(login)))
        self.assertIsNotNone(self.reactor.drive(self.store.lookup("yoen")))

    def test_lookupManyReturnsThoseFound(self) -> None:
        """
        C{lookupMany} maps each login found to its avatar and leaves out the
        others; duplicates are fine.
        """
        found = self.reactor.drive(self.store.lookupMany(["yoen", "nobody", "mohamed", "yoen"]))
        self.assertEqual(sorted(found), ["mohamed", "yoen"])
        self.assertEqual(found["mohamed"], Avatar("mohamed", "Al Ghâlib", "Mohamed"))

    def test_lookupManyBeyondOneStatement(self) -> None:
        """
        More logins than one SQL statement can carry are looked up in
        chunks.
        """
        logins = [f"user{i}" for i in range(2500)] + ["esteban"]
        found = self.reactor.drive(self.store.lookupMany(logins))
        self.assertEqual(list(found), ["esteban"])

    def test_writesAreRefused(self) -> None:
        """
        The daemon's connection is read-only.
        """

        def write(cursor: sqlite3.Cursor) -> None:
            cursor.execute("DELETE FROM users")

        with self.assertRaises(sqlite3.OperationalError) as raised:
            self.reactor.drive(self.service.pool.runInteraction(write))
        self.assertIn("readonly", str(raised.exception))


class OddRowsTests(SynchronousTestCase):
    """
    Rows the original schema allows but a careful one would not.
    """

    def lookup(self, rows: list[tuple[object, ...]], login: str) -> Avatar | None:
        path = tutorialDatabase(self.mktemp() + ".sqlite", rows)
        reactor = ThreadedMemoryReactor()
        service, store = pooledStore(path, reactor)
        service.startService()
        try:
            return reactor.drive(store.lookup(login))
        finally:
            service.stopService()

    def test_nullNamesAreNone(self) -> None:
        """
        C{NULL} name and forname are read as L{None}, told apart from empty
        text.
        """
        self.assertEqual(self.lookup([("ghost", None, None)], "ghost"), Avatar("ghost", None, None))
        self.assertEqual(self.lookup([("blank", "", "")], "blank"), Avatar("blank", "", ""))

    def badTextStore(self, inline: bool) -> tuple[SQLiteStore, ThreadedMemoryReactor]:
        """
        A store over a started pool, on a database holding C{good} and
        C{bad}, whose name is TEXT that is not UTF-8; with C{inline}, the
        store reads inline too.
        """
        path = tutorialDatabase(self.mktemp() + ".sqlite", [("good", "G", "Ok")])
        connection = sqlite3.connect(path)
        connection.execute("INSERT INTO users VALUES ('bad', CAST(X'4fff' AS TEXT), 'B')")
        connection.commit()
        connection.close()
        reactor = ThreadedMemoryReactor()
        service, store = pooledStore(path, reactor, inline=inline)
        service.startService()
        self.addCleanup(service.stopService)
        return store, reactor

    def test_textThatIsNotUTF8IsReplaced(self) -> None:
        """
        Bytes stored as TEXT that are not UTF-8 show as U+FFFD instead of
        failing the lookup.
        """
        store, reactor = self.badTextStore(inline=False)
        self.assertEqual(reactor.drive(store.lookup("bad")), Avatar("bad", "O\ufffd", "B"))

    def test_textThatIsNotUTF8IsReplacedWhenReadInline(self) -> None:
        """
        With an inline reader, a row whose text is not UTF-8 is not read
        inline, but through the pool, which replaces its bad bytes; other
        rows are still read inline.
        """
        store, reactor = self.badTextStore(inline=True)
        self.assertRaises(WouldBlock, store.lookupNow, "bad")
        self.assertEqual(store.lookupNow("good"), Avatar("good", "G", "Ok"))
        self.assertEqual(reactor.drive(store.lookup("bad")), Avatar("bad", "O\ufffd", "B"))


class FaultTests(SynchronousTestCase):
    """
    The store through database faults: a lock, a file removed or replaced,
    lookups nobody waits for any more.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()
        self.service, self.store = pooledStore(self.path, self.reactor, lockTimeout=0.2)
        self.service.startService()
        self.addCleanup(lambda: self.service.stopService() if self.service.running else None)

    def lookup(self, login: str) -> Avatar | None:
        return self.reactor.drive(self.store.lookup(login))

    def test_lockedDatabaseFailsThenRecovers(self) -> None:
        """
        While another connection holds an exclusive lock, lookups fail after
        the busy timeout; once it is released they work again.
        """
        holder = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN EXCLUSIVE")
        with self.assertRaises(sqlite3.OperationalError) as raised:
            self.lookup("yoen")
        self.assertIn("locked", str(raised.exception))
        holder.execute("ROLLBACK")
        self.assertEqual(self.lookup("yoen"), Avatar("yoen", "Van der Veld", "Yoen"))

    def test_interruptEndsTheWaitForALock(self) -> None:
        """
        At shutdown, a query waiting on another process's lock gives up at
        once instead of holding the pool's thread (and the shutdown) for its
        whole lock timeout.
        """
        self.store.lockTimeout = 600
        holder = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN EXCLUSIVE")
        waiting = self.store.lookup("yoen")
        self.service.stopService()
        self.assertEqual(poolThreads(), [])
        with self.assertRaises(sqlite3.OperationalError):
            self.reactor.drive(waiting)

    def test_removedFileFailsUntilAFileIsBack(self) -> None:
        """
        A removed database is not served from the deleted file: lookups
        fail, naming the cause, until a database is in place again.
        """
        self.assertIsNotNone(self.lookup("yoen"))
        os.rename(self.path, self.path + ".away")
        with self.assertRaises(DatabaseGone) as raised:
            self.lookup("yoen")
        self.assertEqual(str(raised.exception), f"{self.path} has been removed")
        os.rename(self.path + ".away", self.path)
        self.assertIsNotNone(self.lookup("yoen"))

    def test_replacedFileIsReopened(self) -> None:
        """
        A new database renamed over the old one (the usual way to publish
        one) is served from the next lookup on.
        """
        self.assertIsNotNone(self.lookup("yoen"))
        fresh = tutorialDatabase(self.path + ".new", [("newbie", "New", "Nina")])
        os.rename(fresh, self.path)
        self.assertIsNone(self.lookup("yoen"))
        self.assertEqual(self.lookup("newbie"), Avatar("newbie", "New", "Nina"))

    def test_fileReplacedByGarbageFailsThenRecovers(self) -> None:
        """
        A file that is not a database put in place fails lookups; a good one
        put back is served.
        """
        self.assertIsNotNone(self.lookup("yoen"))
        with open(self.path + ".bad", "wb") as f:
            f.write(b"garbage " * 1000)
        os.rename(self.path + ".bad", self.path)
        with self.assertRaises(sqlite3.DatabaseError):
            self.lookup("yoen")
        os.rename(tutorialDatabase(self.path + ".good"), self.path)
        self.assertIsNotNone(self.lookup("yoen"))

    def test_abandonedLookupNeverQueries(self) -> None:
        """
        A lookup cancelled while it waits for the pool's thread fails at
        once, and its query is never run.
        """
        started = threading.Event()
        release = threading.Event()

        def block(cursor: sqlite3.Cursor) -> None:
            started.set()
            release.wait(10)

        statements: list[str] = []
        self.reactor.drive(
            self.service.pool.runWithConnection(
                lambda connection: connection.set_trace_callback(statements.append)
            )
        )
        blocker = self.service.pool.runInteraction(block)
        self.assertTrue(started.wait(10))
        abandoned = self.store.lookup("yoen")
        abandoned.cancel()
        self.failureResultOf(abandoned, CancelledError)
        release.set()
        self.reactor.drive(blocker)
        self.assertIsNone(self.reactor.drive(self.store.lookup("nobody")))
        self.assertEqual([statement.rsplit(" ", 1)[-1] for statement in statements], ["'nobody'"])


class InlineTests(SynchronousTestCase):
    """
    L{SQLiteStore} with C{inline}: reads that can complete at once do so in
    the caller's thread; anything else takes the pool's path.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()) + ".sqlite")
        self.reactor = ThreadedMemoryReactor()
        # Not started: a lookup that reached the pool would stay unanswered
        # until the test starts it.
        self.service, self.store = pooledStore(self.path, self.reactor, inline=True)
        self.addCleanup(self.store.interrupt)

    def startPool(self) -> None:
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def test_readIsAnsweredAtOnceWithoutThePool(self) -> None:
        """
        Lookups are answered synchronously, no thread involved.
        """
        self.assertEqual(
            self.successResultOf(self.store.lookup("esteban")), Avatar("esteban", "Garcia Marquez", "Estebán")
        )
        self.assertIsNone(self.successResultOf(self.store.lookup("nobody")))
        found = self.successResultOf(self.store.lookupMany(["yoen", "mohamed", "x"]))
        self.assertEqual(set(found), {"yoen", "mohamed"})
        self.assertEqual(poolThreads(), [])

    def test_lockedDatabaseTakesThePoolsPath(self) -> None:
        """
        While another process holds a write lock, the inline read does not
        wait: the lookup goes to the pool, which waits for the lock and
        answers once it is released.
        """
        self.successResultOf(self.store.lookup("yoen"))
        self.reactor.advance(READ_SPAN)
        self.startPool()
        holder = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.addCleanup(holder.close)
        holder.execute("BEGIN EXCLUSIVE")
        d = self.store.lookup("yoen")
        self.assertNoResult(d)
        threading.Timer(0.2, holder.execute, ("ROLLBACK",)).start()
        self.assertEqual(self.reactor.drive(d), Avatar("yoen", "Van der Veld", "Yoen"))

    def test_replacedFileIsFollowed(self) -> None:
        """
        A database renamed into place is read from at once.
        """
        self.successResultOf(self.store.lookup("yoen"))
        replacement = tutorialDatabase(self.path + ".new", [("yoen", "Veld", "Yoen")])
        os.rename(replacement, self.path)
        self.reactor.advance(READ_SPAN)
        self.assertEqual(self.successResultOf(self.store.lookup("yoen")), Avatar("yoen", "Veld", "Yoen"))

    def test_removedFileFailsTheLookup(self) -> None:
        """
        A removed database is not read from: the lookup fails, naming the
        cause.
        """
        self.successResultOf(self.store.lookup("yoen"))
        os.unlink(self.path)
        self.reactor.advance(READ_SPAN)
        self.failureResultOf(self.store.lookup("yoen"), DatabaseGone)

    def test_readsWithinTheSpanShareOneTransaction(self) -> None:
        """
        Reads made within L{READ_SPAN} of the first hold one read
        transaction, which keeps a writer out until the span ends, and no
        longer.
        """
        self.successResultOf(self.store.lookup("yoen"))
        self.reactor.advance(READ_SPAN / 2)
        self.successResultOf(self.store.lookup("esteban"))
        writer = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.addCleanup(writer.close)
        self.assertRaises(sqlite3.OperationalError, writer.execute, "BEGIN EXCLUSIVE")
        self.reactor.advance(READ_SPAN / 2)
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("ROLLBACK")

    def test_failedReadEndsTheTransaction(self) -> None:
        """
        A read that fails ends the transaction at once, so that the
        next read starts afresh.
        """
        self.successResultOf(self.store.lookup("yoen"))

        def broken(cursor: object, argument: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        inline = self.store.inline
        assert inline is not None
        self.assertRaises(sqlite3.OperationalError, inline.read, broken, None)
        writer = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.addCleanup(writer.close)
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("ROLLBACK")

    def test_failedFetchReleasesTheReadLock(self) -> None:
        """
        A read whose fetch fails (here, on text that is not UTF-8), by
        L{InlineReader.lookup} or L{InlineReader.read}, ends its
        transaction and releases the file's read lock at once: a writer
        gets its lock right after, without waiting for another read.
        """
        connection = sqlite3.connect(self.path)
        connection.execute("INSERT INTO users VALUES ('bad', CAST(X'4fff' AS TEXT), 'B')")
        connection.commit()
        connection.close()
        inline = self.store.inline
        assert inline is not None
        writer = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.addCleanup(writer.close)

        def fetch(cursor: sqlite3.Cursor, login: str) -> object:
            return cursor.execute("SELECT name FROM users WHERE login = ?", (login,)).fetchone()

        for failing in (lambda: inline.lookup("bad"), lambda: inline.read(fetch, "bad")):
            self.assertEqual(inline.lookup("yoen"), Avatar("yoen", "Van der Veld", "Yoen"))
            self.assertRaises(sqlite3.OperationalError, failing)
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute("ROLLBACK")

    def test_interruptEndsInlineReads(self) -> None:
        """
        After L{SQLiteStore.interrupt} (at shutdown), the inline connection
        is closed and lookups go to the pool.
        """
        self.successResultOf(self.store.lookup("yoen"))
        self.store.interrupt()
        self.assertIsNone(self.store.inline)
        self.assertNoResult(self.store.lookup("yoen"))

    def test_inlinePageCacheIsLarge(self) -> None:
        """
        The inline connection keeps up to L{PAGE_CACHE_KIB} KiB of pages,
        not SQLite's default 2 MB.
        """
        self.successResultOf(self.store.lookup("yoen"))
        inline = self.store.inline
        assert inline is not None
        self.assertEqual(
            inline.read(lambda cursor, _: cursor.execute("PRAGMA cache_size").fetchone(), None),
            (-PAGE_CACHE_KIB,),
        )

    def test_versionStaysWhileNothingIsWritten(self) -> None:
        """
        Span after span, with no write, the version does not change; the
        store provides L{IChangeWatch}.
        """
        self.assertTrue(verifyObject(IChangeWatch, self.store))
        first = self.store.version()
        self.successResultOf(self.store.lookup("yoen"))
        self.reactor.advance(READ_SPAN)
        self.assertEqual([self.store.version() for _ in range(2)], [first, first])
        self.reactor.advance(READ_SPAN)
        self.assertEqual(self.store.version(), first)

    def test_commitByAnotherProcessChangesTheVersion(self) -> None:
        """
        A commit made through another connection shows as a new version in
        the next span.
        """
        before = self.store.version()
        self.reactor.advance(READ_SPAN)
        writer = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(writer.close)
        writer.execute("update users set name = 'Veld' where login = 'yoen'")
        self.assertNotEqual(self.store.version(), before)

    def test_versionAndReadsShareTheTransaction(self) -> None:
        """
        The version is that of what the reads see: asking for it begins
        the read transaction they share, which keeps a writer out until the
        span ends.
        """
        self.store.version()
        writer = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.addCleanup(writer.close)
        self.assertRaises(sqlite3.OperationalError, writer.execute, "BEGIN EXCLUSIVE")
        self.successResultOf(self.store.lookup("yoen"))
        self.reactor.advance(READ_SPAN)
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("ROLLBACK")

    def test_replacedFileChangesTheVersion(self) -> None:
        """
        A file renamed into place is another database: a new version, even
        when its own counter happens to match.
        """
        before = self.store.version()
        self.reactor.advance(READ_SPAN)
        os.rename(tutorialDatabase(self.path + ".new"), self.path)
        self.assertNotEqual(self.store.version(), before)

    def test_versionCannotBeToldWhileLockedOrGone(self) -> None:
        """
        While a writer holds the database, once it is removed, and without
        an inline reader, the version cannot be told: L{WouldBlock}.
        """
        holder = sqlite3.connect(self.path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        self.assertRaises(WouldBlock, self.store.version)
        holder.execute("ROLLBACK")
        holder.close()
        self.store.version()
        self.reactor.advance(READ_SPAN)
        os.unlink(self.path)
        self.assertRaises(WouldBlock, self.store.version)
        _, pooled = pooledStore(self.path, self.reactor)
        self.assertRaises(WouldBlock, pooled.version)

    def test_lookupNowAnswersOrSaysItWouldBlock(self) -> None:
        """
        L{SQLiteStore.lookupNow} answers from the inline connection, and
        raises L{WouldBlock} while the database is locked, once it is
        removed, and when the store does not read inline.
        """
        self.assertEqual(self.store.lookupNow("yoen"), Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertIsNone(self.store.lookupNow("nobody"))
        self.reactor.advance(READ_SPAN)
        holder = sqlite3.connect(self.path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        self.assertRaises(WouldBlock, self.store.lookupNow, "yoen")
        holder.execute("ROLLBACK")
        holder.close()
        self.assertIsNotNone(self.store.lookupNow("yoen"))
        self.reactor.advance(READ_SPAN)
        os.unlink(self.path)
        self.assertRaises(WouldBlock, self.store.lookupNow, "yoen")
        _, pooled = pooledStore(self.path, self.reactor)
        self.assertRaises(WouldBlock, pooled.lookupNow, "yoen")
