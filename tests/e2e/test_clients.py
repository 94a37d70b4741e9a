"""
End to end: who may ask (C{--allow}) and how much (C{--rate-limit}), on the
real daemon, over real sockets.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import LOG_ERRORS, Daemon, receiveAll, receiveLines, waitFor
from tests.helpers import TUTORIAL_REPLIES, parseStats, tutorialDatabase

DENIED = b"ERR denied not allowed from this address\r\n"
FINGER_DENIED = b"finger: not allowed from this address\r\n"
RATE_LIMITED = b"ERR rate-limit too many requests, retry later\r\n"


class ClientRulesTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))
        # A UNIX socket's path must be short.
        short = tempfile.mkdtemp(prefix="avatard-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short, True)
        self.socket = os.path.join(short, "avatard.sock")

    def start(self, *arguments: str) -> Daemon:
        daemon = Daemon(
            self.directory,
            "--db",
            self.db,
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--port",
            f"unix:{self.socket}",
            "--finger",
            "tcp:0:interface=127.0.0.1",
            *arguments,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        assert len(daemon.addresses) == 3, daemon.text()
        self.whoPort = int(daemon.addresses[0].rsplit(":", 1)[1])
        self.fingerPort = int(daemon.addresses[2].rsplit(":", 1)[1])
        return daemon

    def ask(self, port: int, data: bytes) -> bytes:
        """
        @return: all the daemon sends a client of C{port} on 127.0.0.1 that
            sent C{data} as it connected, until the daemon closes.
        """
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            return receiveAll(s)

    def stats(self) -> dict[str, float]:
        """
        @return: C{STATS}, asked on the UNIX socket, which no rule concerns.
        """
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall(b"STATS\n")
            return parseStats(receiveLines(s, 1))


class AllowTests(ClientRulesTestCase):
    def test_deniedOnEveryFrontEnd(self) -> None:
        """
        With an C{--allow} that excludes 127.0.0.1, a client of the WHO
        port gets the denied line, one of the finger port finger's own,
        also when it sent its request as it connected, or is still
        sending, and nothing else; the UNIX socket still serves, and C{STATS}
        counts the denials; the log says so once, not once per connection.
        """
        daemon = self.start("--allow", "192.0.2.0/24", "--allow", "2001:db8::/32")
        self.assertIn("(allow 192.0.2.0/24 2001:db8::/32, ", daemon.text())
        for _ in range(9):
            self.assertEqual(self.ask(self.whoPort, b"WHO yoen\n"), DENIED)
            self.assertEqual(self.ask(self.fingerPort, b"yoen\r\n"), FINGER_DENIED)
        # A client still sending when the daemon is done with it.
        self.assertEqual(self.ask(self.whoPort, b"WHO yoen\n" * 50_000), DENIED)
        self.assertEqual(self.ask(self.fingerPort, b"yoen\r\n" * 50_000), FINGER_DENIED)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
        stats = self.stats()
        self.assertEqual((stats["connections.denied"], stats["connections.refused"]), (20, 0))
        self.assertEqual((stats["requests.ok"], stats["requests.finger"]), (2, 0))
        # The log file is written after the replies: wait for the line.
        self.assertTrue(waitFor(lambda: "Denying connections" in daemon.text()), daemon.text())
        denials = [line for line in daemon.log if "Denying connections" in line]
        self.assertEqual(len(denials), 1, daemon.text())
        self.assertIn("the first from 127.0.0.1; allowed: 192.0.2.0/24, 2001:db8::/32", denials[0])
        self.assertEqual(daemon.stop(), -signal.SIGTERM)
        self.assertFalse([e for e in LOG_ERRORS if e in daemon.text()], daemon.text())

    def test_allowedClientsAreServed(self) -> None:
        """
        A client inside the list is served as usual.
        """
        self.start("--allow", "127.0.0.0/8")
        self.assertEqual(
            self.ask(self.whoPort, b"WHO yoen\nQUIT\n"), TUTORIAL_REPLIES["yoen"] + b"OK bye\r\n"
        )
        self.assertEqual(self.ask(self.fingerPort, b"yoen\r\n"), TUTORIAL_REPLIES["yoen"][3:])
        self.assertEqual(self.stats()["connections.denied"], 0)

    def test_ipv4ClientOfADualStackListener(self) -> None:
        """
        An IPv4 client of an IPv6 listener that also takes IPv4
        (C{::ffff:127.0.0.2}) is judged as the IPv4 address it is.
        """
        daemon = Daemon(
            self.directory, "--db", self.db, "--port", "tcp6:0:interface=\\:\\:", "--allow", "127.0.0.2"
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        port = daemon.port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveAll(s), DENIED)
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0)) as s:
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])


class RateLimitTests(ClientRulesTestCase):
    def test_pipeliningPastTheBudget(self) -> None:
        """
        A client pipelining past its budget in one write gets every reply,
        in order: those within the budget answered, the others refused,
        C{QUIT} answered anyway; the refusals are counted and in the
        access log; finger queries from the same address share the budget.
        """
        accessLog = os.path.join(self.directory, "access.log")
        daemon = self.start("--rate-limit", "5/3600", "--access-log", accessLog)
        self.assertIn("(rate-limit 5/3600 s, ", daemon.text())
        requests = b"WHO yoen\nPING\nWHO nobody\nJSON yoen\nWHO esteban\nWHO yoen\nPING\nQUIT\n"
        self.assertEqual(
            self.ask(self.whoPort, requests),
            TUTORIAL_REPLIES["yoen"]
            + b"OK pong\r\n"
            + b"ERR not-found no such login\r\n"
            + b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n'
            + TUTORIAL_REPLIES["esteban"]
            + RATE_LIMITED * 2
            + b"OK bye\r\n",
        )
        self.assertEqual(self.ask(self.fingerPort, b"yoen\r\n"), b"finger: too many queries, retry later\r\n")
        stats = self.stats()
        self.assertEqual((stats["requests.rate-limit"], stats["requests.finger"]), (3, 1))
        self.assertTrue(waitFor(lambda: os.path.exists(accessLog) and len(self.accessLines(accessLog)) >= 10))
        self.assertEqual(
            [line.split(" ")[2:4] for line in self.accessLines(accessLog)[5:9]],
            [["WHO", "rate-limit"], ["PING", "rate-limit"], ["QUIT", "ok"], ["FINGER", "rate-limit"]],
        )

    def accessLines(self, path: str) -> list[str]:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()


class OptionErrorTests(SynchronousTestCase):
    """
    A malformed C{--allow} or C{--rate-limit} refuses the start: a non-zero
    exit, the line naming it last, no traceback.
    """

    def assertRefused(self, option: str, value: str, message: str) -> None:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        daemon = Daemon(directory, "--db", db, "--port", "tcp:0:interface=127.0.0.1", option, value)
        self.assertEqual(daemon.wait(), 1)
        self.assertTrue(daemon.log[-1].endswith(f": {option}: {message}\n"), daemon.text())
        self.assertNotIn("Traceback", daemon.text())
        self.assertIsNone(daemon.where)

    def test_malformedNetwork(self) -> None:
        self.assertRefused(
            "--allow", "10.0.0.0/33", "'10.0.0.0/33' is not an IP network (as 192.0.2.0/24 or 2001:db8::/32)"
        )

    def test_networkWithHostBits(self) -> None:
        self.assertRefused(
            "--allow", "10.1.2.3/8", "'10.1.2.3/8' has bits set past its prefix: did you mean 10.0.0.0/8?"
        )

    def test_malformedRate(self) -> None:
        self.assertRefused(
            "--rate-limit",
            "100",
            "'100' is not N/SECONDS, a number of requests per a number of seconds (as 100/1 or 600/60)",
        )
