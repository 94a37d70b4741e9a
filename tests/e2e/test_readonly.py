"""
End to end: the real C{twistd -n avatard} where it cannot write, as the
shipped systemd unit runs it (C{ProtectSystem=strict},
C{ReadOnlyPaths=/var/lib/avatard}): a database in WAL journal mode, and an
installed package whose plugin directory is read-only.

Root ignores file modes, so as root the daemon runs as C{nobody} in a
directory of root's; otherwise it runs as the current user in a directory
of its own made read-only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from avatard.stores.sqlite.store import READ_SPAN
from tests.daemon import (
    LOG_ERRORS,
    REPO,
    Daemon,
    environment,
    nobodyLauncher,
    receiveLines,
    runPython,
    waitFor,
    writePluginCaches,
)
from tests.helpers import TUTORIAL_REPLIES, TUTORIAL_USERS, tutorialDatabase

UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"

OPERATIONS = os.path.join(REPO, "docs", "OPERATIONS.md")

INSTALLED_BIN = "/opt/avatard/bin/"
"""
Where the install steps of docs/OPERATIONS.md put avatard's scripts.
"""


def walRefusal(db: str) -> str:
    """
    @return: what the daemon says of C{db}, in WAL mode, in a directory it
        cannot write.
    """
    return (
        f"database {db} is in WAL journal mode, which needs a -shm file beside it that SQLite "
        "cannot create or open here (attempt to write a readonly database); switch the file to "
        f"DELETE mode before publishing it: sqlite3 {db} 'PRAGMA journal_mode=DELETE'"
    )


def setJournalMode(db: str, mode: str) -> None:
    """
    Switch C{db} to journal mode C{mode} and close it: SQLite then removes
    the C{-wal} and C{-shm} files of a WAL-mode file.
    """
    connection = sqlite3.connect(db, isolation_level=None)
    try:
        (switched,) = connection.execute(f"PRAGMA journal_mode={mode}").fetchone()
    finally:
        connection.close()
    assert switched == mode, switched


def assertAnswersAndStopsCleanly(test: SynchronousTestCase, daemon: Daemon) -> None:
    """
    C{daemon} answers C{WHO yoen}, stops on SIGTERM, and its log says so
    with nothing a clean log never says.
    """
    with daemon.connect() as s:
        s.sendall(b"WHO yoen\n")
        test.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
    test.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
    log = daemon.text()
    test.assertIn("avatard stopped", log)
    for phrase in LOG_ERRORS:
        test.assertNotIn(phrase, log)


class UnwritablePlace:
    """
    A directory under C{/tmp} that the daemon's user can search and read
    but not write, and how to run the daemon as that user.

    As root, the directory is root's (mode 0755) and the daemon runs as
    C{nobody} (see L{nobodyLauncher}); otherwise the directory is the
    current user's, read-only (mode 0555) but within L{writing}, and the
    daemon runs as the current user.

    @ivar path: the directory.
    @ivar launcher: the launcher (see L{Daemon}) that runs the daemon as its
        user.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.asRoot = os.geteuid() == 0
        self.launcher = nobodyLauncher() if self.asRoot else []
        # pytest's and trial's temporary directories may be out of the other
        # user's reach (mode 0700): this one is not.
        self.path = tempfile.mkdtemp(prefix="avatard-readonly-", dir="/tmp")
        testCase.addCleanup(self._remove)
        self._setWritable(False)

    def _setWritable(self, writable: bool) -> None:
        # Every user may search and read it; as root, its owner is the only
        # one who may write it anyway.
        os.chmod(self.path, 0o755 if writable or self.asRoot else 0o555)

    def _remove(self) -> None:
        self._setWritable(True)
        shutil.rmtree(self.path)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """
        Let this process write the directory for the duration.
        """
        self._setWritable(True)
        try:
            yield
        finally:
            self._setWritable(False)

    def start(self, testCase: SynchronousTestCase, *arguments: str, fromSource: bool = True) -> Daemon:
        """
        Start the daemon as this place's user, in this directory, listening
        on a free port.
        """
        daemon = Daemon(
            self.path,
            *arguments,
            "--port",
            "tcp:0:interface=127.0.0.1",
            launcher=self.launcher,
            fromSource=fromSource,
        )
        testCase.addCleanup(daemon.stop, signal.SIGKILL)
        return daemon


class WALDatabaseTests(SynchronousTestCase):
    """
    A database in WAL journal mode in a directory the daemon cannot write:
    SQLite cannot read it without creating its C{-shm} file there.
    """

    def setUp(self) -> None:
        self.place = UnwritablePlace(self)
        self.db = os.path.join(self.place.path, "users.sqlite")
        with self.place.writing():
            self.publish("wal")
        # As the install steps say: a daemon that cannot write the plugin
        # directories finds their caches complete, and logs nothing of them.
        writePluginCaches(environment())

    def publish(self, mode: str, users: Iterable[tuple[str, str, str]] = TUTORIAL_USERS) -> None:
        """
        Build a database in journal mode C{mode} beside the served one and
        rename it into place, as a new database is published.
        """
        new = self.db + ".new"
        tutorialDatabase(new, users)
        setJournalMode(new, mode)
        os.chmod(new, 0o644)
        os.rename(new, self.db)

    def test_walDatabaseIsRefusedWithOneLine(self) -> None:
        """
        The daemon refuses to start on it: a non-zero exit at once, one line
        naming the journal mode and the fix, no traceback, and no file
        created beside the database.
        """
        self.assertEqual(os.listdir(self.place.path), ["users.sqlite"])
        daemon = self.place.start(self, "--db", self.db)
        self.assertEqual(daemon.wait(), 1)
        self.assertEqual(daemon.log, [f"avatard: {walRefusal(self.db)}\n"])
        self.assertEqual(os.listdir(self.place.path), ["users.sqlite"])

    def test_sameDatabaseInDeleteModeStartsAndAnswers(self) -> None:
        """
        The same file, switched to DELETE mode as the refusal says, is
        served from the same read-only place, with a clean log.
        """
        with self.place.writing():
            setJournalMode(self.db, "delete")
        daemon = self.place.start(self, "--db", self.db)
        assertAnswersAndStopsCleanly(self, daemon)
        self.assertEqual(os.listdir(self.place.path), ["users.sqlite"])

    def test_walDatabasePublishedWhileServingIsNamedInTheLog(self) -> None:
        """
        A WAL-mode file renamed over the served one fails the lookups
        (C{ERR unavailable}), and the log names the journal mode and the
        fix; a DELETE-mode file published next is served again.  (The cache
        is off, so that every request reaches the database.)
        """
        with self.place.writing():
            setJournalMode(self.db, "delete")
        daemon = self.place.start(self, "--db", self.db, "--cache-size", "0")
        with daemon.connect() as s:
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
            with self.place.writing():
                self.publish("wal", [("yoen", "Veld", "Yoen")])
            time.sleep(READ_SPAN * 5)
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), UNAVAILABLE)
            with self.place.writing():
                self.publish("delete", [("yoen", "Veld", "Yoen")])
            time.sleep(READ_SPAN * 5)
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n")
        self.assertTrue(waitFor(lambda: "The database answers again" in daemon.text()), daemon.text())
        log = daemon.text()
        self.assertEqual(log.count("Database lookups fail"), 1, log)
        failing = "Database lookups fail, answering ERR unavailable until they work again"
        self.assertIn(f"{failing}: {walRefusal(self.db)}\n", log)


def documentedCacheCommand() -> str:
    """
    @return: the command docs/OPERATIONS.md gives to write Twisted's plugin
        cache, as written there (for an install in L{INSTALLED_BIN}).
    """
    with open(OPERATIONS, encoding="utf-8") as f:
        for line in f:
            if line.startswith(f"{INSTALLED_BIN}twistd --help"):
                return line.split("#", 1)[0].strip()
    raise AssertionError("docs/OPERATIONS.md gives no command that writes the plugin cache")


class ReadOnlyInstallTests(SynchronousTestCase):
    """
    An installed avatard whose Twisted plugin directory the daemon's user
    cannot write, as under C{ProtectSystem=strict}.
    """

    def pluginDirectories(self, env: dict[str, str], cwd: str) -> list[str]:
        """
        @return: the directories of Twisted plugins that C{twistd} run in
            C{env} reads: those of C{twisted.plugins} that hold a plugin.
        """
        script = "import json, twisted.plugins; print(json.dumps(twisted.plugins.__path__))"
        return [
            directory
            for directory in json.loads(runPython(script, env=env, cwd=cwd))
            if os.path.isdir(directory)
            and any(name.endswith(".py") and name != "__init__.py" for name in os.listdir(directory))
        ]

    def test_installedDaemonStartsWithACleanLogWhereItCannotWrite(self) -> None:
        """
        After the install steps' command that writes the plugin cache, run
        as the installing user on a fresh install (no C{dropin.cache}, as
        C{pip install} leaves it), the installed C{twistd avatard}, run as
        a user who cannot write its plugin directories, starts, answers and
        stops with a clean log: no C{Unable to write to plugin cache}, no
        traceback.
        """
        # Not as the current user: it may write the plugin directories.
        nobodyLauncher()
        place = UnwritablePlace(self)
        scripts = os.path.dirname(sys.executable)
        if not os.path.exists(os.path.join(scripts, "twistd")):
            raise SkipTest(f"no twistd script beside {sys.executable}: avatard is not installed there")
        env = environment(fromSource=False)
        directories = self.pluginDirectories(env, place.path)
        self.assertTrue(any(os.path.exists(os.path.join(d, "avatard_plugin.py")) for d in directories))
        for directory in directories:
            # (Not 'from contextlib import suppress': trial reads a module's
            # 'suppress' as the warnings its tests suppress.)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, "dropin.cache"))
        command = documentedCacheCommand().replace(INSTALLED_BIN, shlex.quote(scripts) + "/", 1)
        subprocess.run(["/bin/sh", "-c", command], env=env, cwd=place.path, check=True, timeout=120)
        for directory in directories:
            self.assertTrue(os.path.exists(os.path.join(directory, "dropin.cache")), directory)
        db = tutorialDatabase(os.path.join(place.path, "users.sqlite"))
        os.chmod(db, 0o644)
        daemon = place.start(self, "--db", db, fromSource=False)
        assertAnswersAndStopsCleanly(self, daemon)
