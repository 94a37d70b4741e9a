"""
End to end: the real C{twistd -n avatard} process, over real sockets; the
protocol's behaviour on SQLite and on PostgreSQL (one shared suite), and
what is particular to SQLite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import ssl
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.backends import PostgresBackend, SQLiteBackend, _TestCase
from tests.daemon import LOG_ERRORS, Daemon, receiveAll, receiveLines
from tests.helpers import TUTORIAL_REPLIES, selfSignedCertificate, tutorialDatabase


class RunningDaemonTestsMixin(_TestCase):
    """
    One daemon on a database made by the original tutorial's code.
    """

    def tutorialDatabase(self) -> str:
        raise NotImplementedError()

    def insertRows(self, db: str, rows: list[tuple[str, str, str]]) -> None:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = self.tutorialDatabase()
        self.daemon = Daemon(self.directory, "--db", self.db, "--port", "tcp:0:interface=127.0.0.1")
        self.addCleanup(self.daemon.stop, signal.SIGKILL)

    def assertCleanLog(self) -> None:
        log = self.daemon.text()
        for phrase in LOG_ERRORS:
            self.assertNotIn(phrase, log)

    def test_tutorialUsersByteExact(self) -> None:
        """
        The three users of the original tutorial, byte for byte.
        """
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\r\nWHO esteban\nWHO mohamed\n")
            self.assertEqual(
                receiveLines(s, 3),
                TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"] + TUTORIAL_REPLIES["mohamed"],
            )

    def test_pipelinedRequestsAnsweredInOrder(self) -> None:
        """
        Thousands of requests in one write get one reply each, in order.
        """
        logins = [("yoen", "nobody", "esteban", "mohamed", "bad@host")[i % 5] for i in range(4000)]
        expected = b"".join(
            TUTORIAL_REPLIES.get(
                login,
                b"ERR bad-request forwarding (user@host) is not supported\r\n"
                if "@" in login
                else b"ERR not-found no such login\r\n",
            )
            for login in logins
        )
        with self.daemon.connect() as s:
            s.sendall(b"".join(f"WHO {login}\n".encode() for login in logins))
            self.assertEqual(receiveLines(s, len(logins)), expected)

    def test_halfClosingOneShotClient(self) -> None:
        """
        A client that sends its request and at once shuts its sending side
        (as C{nc -N} does) gets its reply, then the server closes.
        """
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\nPING\nWHO esteban")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(
                receiveAll(s),
                TUTORIAL_REPLIES["yoen"] + b"OK pong\r\n" + TUTORIAL_REPLIES["esteban"],
            )

    def test_halfClosingClientOwedMoreThanTheBuffer(self) -> None:
        """
        A client that pipelines more replies than the server keeps unsent,
        shuts its sending side, and only then reads, gets every reply.
        """
        count = 20000
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\n" * count)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), TUTORIAL_REPLIES["yoen"] * count)

    def test_clientsClosingAfterTheirReplyAreForgotten(self) -> None:
        """
        Clients that read their reply and close are closed and counted as
        gone.
        """
        for _ in range(50):
            with self.daemon.connect() as s:
                s.sendall(b"WHO yoen\n")
                self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
        deadline = time.monotonic() + 10
        while True:
            with self.daemon.connect() as s:
                s.sendall(b"STATS\n")
                stats = receiveLines(s, 1)
            if b" connections.open=1 " in stats or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertIn(b" connections.open=1 ", stats)

    def test_quit(self) -> None:
        """
        C{QUIT} says bye and the server closes the connection.
        """
        with self.daemon.connect() as s:
            s.sendall(b"QUIT\n")
            self.assertEqual(receiveAll(s), b"OK bye\r\n")

    def test_databaseChangesAreServed(self) -> None:
        """
        A user added to the database after start is served.
        """
        self.insertRows(self.db, [("late", "Comer", "Jo")])
        with self.daemon.connect() as s:
            s.sendall(b"WHO late\n")
            self.assertEqual(receiveLines(s, 1), b"OK Mr 'Jo Comer' is connected under 'late'\r\n")

    def test_sigtermExitsCleanly(self) -> None:
        """
        After traffic, SIGTERM stops the daemon promptly with twistd's
        convention (killed by the signal it handled), and the log shows an
        orderly stop and no error.
        """
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\n" * 100)
            receiveLines(s, 100)
        idle = self.daemon.connect()
        self.addCleanup(idle.close)
        idle.sendall(b"PING\n")
        self.assertEqual(receiveLines(idle, 1), b"OK pong\r\n")
        self.assertEqual(self.daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertEqual(receiveAll(idle), b"")
        log = self.daemon.text()
        self.assertIn("avatard stopped", log)
        self.assertIn("Server Shut Down.", log)
        self.assertCleanLog()


class SQLiteRunningDaemonTests(SQLiteBackend, RunningDaemonTestsMixin, SynchronousTestCase):
    """
    The shared end-to-end tests on SQLite.
    """


class PostgresRunningDaemonTests(PostgresBackend, RunningDaemonTestsMixin, SynchronousTestCase):
    """
    The shared end-to-end tests on PostgreSQL.
    """


class EndpointTests(SynchronousTestCase):
    """
    Other endpoints, and endpoints that cannot be used.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))

    def test_unixSocket(self) -> None:
        """
        C{--port unix:PATH} serves on a UNIX socket.
        """
        # A socket's path has at most 107 bytes: the test directory's can
        # be longer.
        short = tempfile.mkdtemp(prefix="avatard-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short, True)
        path = os.path.join(short, "avatard.sock")
        daemon = Daemon(self.directory, "--db", self.db, "--port", f"unix:{path}")
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertEqual(daemon.where, f"unix:{path}")
        with daemon.connect() as s:
            s.sendall(b"WHO mohamed\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["mohamed"])

    def test_severalListenersAnswerAtOnce(self) -> None:
        """
        C{--port} given three times (TCP, TCP over IPv6, a UNIX socket):
        the start line names every endpoint, and clients of all three,
        connected at once, are answered.
        """
        short = tempfile.mkdtemp(prefix="avatard-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short, True)
        path = os.path.join(short, "avatard.sock")
        daemon = Daemon(
            self.directory,
            "--db",
            self.db,
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--port",
            "tcp6:0:interface=\\:\\:1",
            "--port",
            f"unix:{path}",
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertEqual(len(daemon.addresses), 3, daemon.text())
        tcp, tcp6, unix = daemon.addresses
        self.assertTrue(tcp.startswith("127.0.0.1:"), tcp)
        self.assertTrue(tcp6.startswith("[::1]:"), tcp6)
        self.assertEqual(unix, f"unix:{path}")
        local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        local.settimeout(10)
        local.connect(path)
        clients = [
            socket.create_connection(("127.0.0.1", int(tcp.rsplit(":", 1)[1])), timeout=10),
            socket.create_connection(("::1", int(tcp6.rsplit(":", 1)[1])), timeout=10),
            local,
        ]
        for client, login in zip(clients, ["yoen", "esteban", "mohamed"], strict=True):
            self.addCleanup(client.close)
            client.sendall(b"WHO %s\n" % login.encode())
        for client, login in zip(clients, ["yoen", "esteban", "mohamed"], strict=True):
            self.assertEqual(receiveLines(client, 1), TUTORIAL_REPLIES[login])
        clients[0].sendall(b"STATS\n")
        self.assertIn(b" connections.open=3 ", receiveLines(clients[0], 1))
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        for client in clients:
            self.assertEqual(receiveAll(client), b"")
        self.assertIn("avatard stopped after ", daemon.text())
        self.assertIn("4 requests on 3 connections", daemon.text())
        self.assertNotIn("Traceback", daemon.text())

    def test_oneUnusableListenerRefusesTheStart(self) -> None:
        """
        One C{--port} of several that cannot listen ends the daemon with one
        line naming it, and the others do not stay open.
        """
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            daemon = Daemon(
                self.directory,
                "--db",
                self.db,
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--port",
                f"tcp:{port}:interface=127.0.0.1",
            )
            self.assertEqual(daemon.wait(), 1)
        self.assertIn(f"avatard: cannot listen on tcp:{port}:interface=127.0.0.1: ", daemon.text())
        self.assertNotIn("Traceback", daemon.text())

    def test_tcp6(self) -> None:
        """
        C{--port tcp6:...} serves over IPv6.
        """
        daemon = Daemon(self.directory, "--db", self.db, "--port", "tcp6:0:interface=\\:\\:1")
        self.addCleanup(daemon.stop, signal.SIGKILL)
        assert daemon.where is not None, daemon.text()
        self.assertTrue(daemon.where.startswith("[::1]:"))
        with socket.create_connection(("::1", daemon.port), timeout=10) as s:
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])

    def test_tls(self) -> None:
        """
        C{--port ssl:...} serves over TLS with the operator's key and
        certificate.
        """
        key, certificate = selfSignedCertificate(self.directory)
        description = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={certificate}"
        daemon = Daemon(self.directory, "--db", self.db, "--port", description)
        self.addCleanup(daemon.stop, signal.SIGKILL)
        context = ssl.create_default_context(cafile=certificate)
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw,
            context.wrap_socket(raw) as s,
        ):
            s.sendall(b"WHO esteban\nQUIT\n")
            self.assertEqual(receiveLines(s, 2), TUTORIAL_REPLIES["esteban"] + b"OK bye\r\n", daemon.text())

    def test_portInUse(self) -> None:
        """
        A port already taken ends the daemon at once with one line naming
        it.
        """
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            daemon = Daemon(self.directory, "--db", self.db, "--port", f"tcp:{port}:interface=127.0.0.1")
            self.assertEqual(daemon.wait(), 1)
        self.assertIn(f"avatard: cannot listen on tcp:{port}:interface=127.0.0.1: ", daemon.text())
        self.assertNotIn("Traceback", daemon.text())


class StartupErrorTests(SynchronousTestCase):
    """
    A C{--db} that cannot be served: a non-zero exit at once, one line
    naming the problem, no traceback, and no file created.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)

    def assertRefused(self, db: str, message: str) -> None:
        before = sorted(os.listdir(self.directory))
        daemon = Daemon(self.directory, "--db", db, "--port", "tcp:0:interface=127.0.0.1")
        self.assertEqual(daemon.wait(), 1)
        self.assertEqual(daemon.log, [f"avatard: {message}\n"])
        self.assertEqual(sorted(os.listdir(self.directory)), before)

    def test_missingFile(self) -> None:
        """
        A missing database file.
        """
        db = os.path.join(self.directory, "missing.sqlite")
        self.assertRefused(db, f"database {db} does not exist (create it with: avatard init {db})")

    def test_notSQLite(self) -> None:
        """
        A file that is not an SQLite database.
        """
        db = os.path.join(self.directory, "users.csv")
        with open(db, "w") as f:
            f.write("yoen,Van der Veld,Yoen\n" * 50)
        self.assertRefused(db, f"{db} is not an SQLite database (file is not a database)")

    def test_noUsersTable(self) -> None:
        """
        An SQLite database without a C{users} table.
        """
        db = os.path.join(self.directory, "other.sqlite")
        sqlite3.connect(db).execute("CREATE TABLE accounts (id)").connection.close()
        self.assertRefused(db, f"database {db} has no users table (create it with: avatard init {db})")
