"""
End to end over TLS: clients that end their input right after their
requests, with a TLS close (and a TCP half-close), get every reply, as over
TCP.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import unittest
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SynchronousTestCase

from tests.backends import PostgresBackend, SQLiteBackend, _TestCase
from tests.daemon import Daemon, receiveLines, waitFor
from tests.helpers import TUTORIAL_REPLIES, selfSignedCertificate
from tests.tlsclient import requestsThenClose

NOT_FOUND = b"ERR not-found no such login\r\n"


class TLSDaemonTestsMixin(_TestCase):
    """
    One daemon listening with C{--port ssl:...}.
    """

    def tutorialDatabase(self) -> str:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = self.tutorialDatabase()
        self.key, self.certificate = selfSignedCertificate(self.directory)
        self.daemon = self.start(
            f"ssl:0:interface=127.0.0.1:privateKey={self.key}:certKey={self.certificate}"
        )

    def start(self, port: str, *arguments: str) -> Daemon:
        daemon = Daemon(self.directory, "--db", self.db, "--port", port, *arguments)
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertIsNotNone(daemon.where, daemon.text())
        return daemon

    def test_oneRequestThenTLSClose(self) -> None:
        """
        A TLS 1.3 client that sends one request and its TLS close in one
        write gets the reply, then the server's TLS close; every time.
        """
        for _ in range(20):
            client = requestsThenClose(("127.0.0.1", self.daemon.port), b"WHO yoen\n")
            self.assertEqual(client.received, TUTORIAL_REPLIES["yoen"], self.daemon.text())
            self.assertTrue(client.closedByServer)

    def test_tlsCloseAndTCPHalfClose(self) -> None:
        """
        So does one that also shuts down its sending side of TCP.
        """
        client = requestsThenClose(("127.0.0.1", self.daemon.port), b"WHO esteban\n", shutDownTCP=True)
        self.assertEqual(client.received, TUTORIAL_REPLIES["esteban"])
        self.assertTrue(client.closedByServer)

    def test_pipelineThenTLSClose(self) -> None:
        """
        2,000 pipelined requests and the TLS close, in one write: 2,000
        replies, in order, then the server's TLS close.
        """
        logins = [("yoen", "nobody", "esteban", "mohamed")[i % 4] for i in range(2000)]
        client = requestsThenClose(
            ("127.0.0.1", self.daemon.port), b"".join(b"WHO %s\n" % login.encode() for login in logins)
        )
        self.assertEqual(
            client.received, b"".join(TUTORIAL_REPLIES.get(login, NOT_FOUND) for login in logins)
        )
        self.assertTrue(client.closedByServer)


class SQLiteTLSDaemonTests(SQLiteBackend, TLSDaemonTestsMixin, SynchronousTestCase):
    """
    On SQLite.
    """

    def poolBusy(self) -> bool:
        context = ssl.create_default_context(cafile=self.certificate)
        context.check_hostname = False
        with self.daemon.connect() as raw, context.wrap_socket(raw) as s:
            s.sendall(b"STATS\nQUIT\n")
            return b" pool.busy=1 " in receiveLines(s, 2)

    def test_replyFromTheDatabaseThreadAfterTLSClose(self) -> None:
        """
        A reply that waits on the database thread (SQLite is locked by a
        writer when the request arrives) is sent after the client's TLS
        close, once the lock is gone.
        """
        writer = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(writer.close)
        writer.execute("BEGIN EXCLUSIVE")
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(requestsThenClose, ("127.0.0.1", self.daemon.port), b"WHO mohamed\n")
            self.assertTrue(waitFor(self.poolBusy), self.daemon.text())
            writer.execute("ROLLBACK")
            client = sent.result(timeout=30)
        self.assertEqual(client.received, TUTORIAL_REPLIES["mohamed"])
        self.assertTrue(client.closedByServer)

    def test_tls12(self) -> None:
        """
        Over TLS 1.2 the server answers the client's TLS close at once (RFC
        5246 section 7.2.1): replies it could give at once come first; a
        reply that waits on the database thread is not sent.
        """
        address = ("127.0.0.1", self.daemon.port)
        client = requestsThenClose(address, b"WHO yoen\nPING\n", ssl.TLSVersion.TLSv1_2)
        self.assertEqual(client.received, TUTORIAL_REPLIES["yoen"] + b"OK pong\r\n")
        self.assertTrue(client.closedByServer)
        writer = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(writer.close)
        writer.execute("BEGIN EXCLUSIVE")
        client = requestsThenClose(address, b"PING\nWHO mohamed\n", ssl.TLSVersion.TLSv1_2)
        self.assertEqual(client.received, b"OK pong\r\n")
        self.assertTrue(client.closedByServer)

    def test_tlsEndpoint(self) -> None:
        """
        A C{tls:} endpoint (a directory of PEM files) serves the same way.
        """
        pem = os.path.join(self.directory, "pem")
        os.mkdir(pem)
        with open(os.path.join(pem, "localhost.pem"), "w") as out:
            for path in (self.key, self.certificate):
                with open(path) as f:
                    out.write(f.read())
        daemon = self.start(f"tls:{pem}:port=0:interface=\\:\\:1")
        client = requestsThenClose(("::1", daemon.port), b"WHO yoen\n")
        self.assertEqual(client.received, TUTORIAL_REPLIES["yoen"], daemon.text())
        self.assertTrue(client.closedByServer)

    def test_socat(self) -> None:
        """
        C{echo 'WHO yoen' | socat - OPENSSL:HOST:PORT,verify=0} prints the
        reply, every time.
        """
        socat = shutil.which("socat")
        if socat is None:
            raise unittest.SkipTest("socat is not installed (apt-get install socat)")
        command = [socat, "-", f"OPENSSL:127.0.0.1:{self.daemon.port},verify=0"]
        answered = sum(
            subprocess.run(command, input=b"WHO yoen\n", capture_output=True, timeout=30).stdout
            == TUTORIAL_REPLIES["yoen"]
            for _ in range(20)
        )
        self.assertEqual(answered, 20)


class PostgresTLSDaemonTests(PostgresBackend, TLSDaemonTestsMixin, SynchronousTestCase):
    """
    On PostgreSQL, where every lookup the cache cannot answer waits on a
    database thread.
    """

    def test_replyFromTheDatabaseThreadAfterTLSClose(self) -> None:
        """
        A reply looked up on a database thread is sent after the client's
        TLS close.
        """
        client = requestsThenClose(("127.0.0.1", self.daemon.port), b"WHO mohamed\n")
        self.assertEqual(client.received, TUTORIAL_REPLIES["mohamed"])
        self.assertTrue(client.closedByServer)
