"""
End to end: the finger front-end (RFC 1288) of the real daemon, with raw
queries and with the stock finger client on port 79.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import urllib.request

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.daemon import Daemon, receiveAll, receiveLines, waitFor
from tests.helpers import parseStats, samples, tutorialDatabase

YOEN = "Mr 'Yoen Van der Veld' is connected under 'yoen'"
_METRICS = re.compile(r"Metrics at (http://\S+/metrics)")


def query(port: int, data: bytes) -> bytes:
    """
    @return: all a finger server on C{port} sends a client that sent
        C{data}, until it closes the connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        return receiveAll(s)


class RawQueryTests(SynchronousTestCase):
    """
    RFC 1288 queries, byte for byte, against C{--finger} on a free port
    beside the WHO protocol's.
    """

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        self.db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        with sqlite3.connect(self.db) as db:
            db.execute(
                "INSERT INTO users (login, name, forname) VALUES (?, ?, ?)",
                ("evil", "\x1b[2J\u202eVan\x07", "Mal\u200bory"),
            )
        self.accessLog = os.path.join(directory, "access.log")
        self.daemon = Daemon(
            directory,
            "--db",
            self.db,
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--finger",
            "tcp:0:interface=127.0.0.1",
            "--max-line",
            "64",
            "--access-log",
            self.accessLog,
            "--metrics",
            "tcp:0:interface=127.0.0.1",
        )
        self.addCleanup(self.daemon.stop, signal.SIGKILL)
        assert len(self.daemon.addresses) == 2, self.daemon.text()
        who, finger = self.daemon.addresses
        self.assertTrue(finger.startswith("finger 127.0.0.1:"), finger)
        self.whoPort = int(who.rsplit(":", 1)[1])
        self.fingerPort = int(finger.rsplit(":", 1)[1])

    def test_queriesAndTheirAnswers(self) -> None:
        """
        C{login} and C{/W login} answer what C{WHO} renders, without C{OK };
        an unknown login, an empty query, a forwarding query and an overlong
        one each get their one line; the server closes after each.
        """
        found = (YOEN + "\r\n").encode()
        self.assertEqual(query(self.fingerPort, b"yoen\r\n"), found)
        self.assertEqual(query(self.fingerPort, b"/W yoen\r\n"), found)
        self.assertEqual(query(self.fingerPort, b"nobody\r\n"), b"finger: no such user\r\n")
        self.assertEqual(
            query(self.fingerPort, b"\r\n"), b"finger: listing users is refused, ask for one login\r\n"
        )
        self.assertEqual(query(self.fingerPort, b"/W\r\n"), query(self.fingerPort, b"\r\n"))
        self.assertEqual(
            query(self.fingerPort, b"yoen@example.org\r\n"), b"finger: forwarding is refused\r\n"
        )
        self.assertEqual(query(self.fingerPort, b"y" * 100 + b"\r\n"), b"finger: query too long\r\n")
        self.assertEqual(query(self.fingerPort, b"yoen\r\nesteban\r\n"), found)

    def test_clientThatHalfClosesAfterItsQueryIsAnswered(self) -> None:
        """
        A client that shuts its sending side right after the query (as
        C{nc -N} does) still gets the answer.
        """
        with socket.create_connection(("127.0.0.1", self.fingerPort), timeout=10) as s:
            s.sendall(b"yoen\r\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(receiveAll(s), (YOEN + "\r\n").encode())

    def test_storedControlCharactersNeverReachTheTerminal(self) -> None:
        """
        A stored name with control, format and bidirectional characters is
        answered with them escaped, exactly as C{WHO} escapes them.
        """
        answer = query(self.fingerPort, b"evil\r\n")
        self.assertEqual(answer, b"Mr 'Mal\\u200bory \\x1b[2J\\u202eVan\\x07' is connected under 'evil'\r\n")
        with socket.create_connection(("127.0.0.1", self.whoPort), timeout=10) as s:
            s.sendall(b"WHO evil\n")
            self.assertEqual(receiveLines(s, 1), b"OK " + answer)

    def test_queriesAreCountedLoggedAndMeasured(self) -> None:
        """
        STATS counts finger queries in C{requests.finger} and with every
        request by result; the access log names them C{FINGER}; /metrics
        counts them under C{command="finger"}.
        """
        query(self.fingerPort, b"yoen\r\n")
        query(self.fingerPort, b"nobody\r\n")
        query(self.fingerPort, b"\r\n")
        with socket.create_connection(("127.0.0.1", self.whoPort), timeout=10) as s:
            s.sendall(b"STATS\n")
            stats = parseStats(receiveLines(s, 1))
        self.assertEqual(stats["requests.finger"], 3)
        self.assertEqual(
            (stats["requests.ok"], stats["requests.not-found"], stats["requests.bad-request"]), (2, 1, 1)
        )
        self.assertTrue(waitFor(lambda: os.path.exists(self.accessLog) and len(self.readAccessLog()) >= 4))
        self.assertEqual(
            [line.split(" ")[2:4] for line in self.readAccessLog()],
            [["FINGER", "ok"], ["FINGER", "not-found"], ["FINGER", "bad-request"], ["STATS", "ok"]],
        )
        [url] = _METRICS.findall(self.daemon.text())
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            metrics = samples(response.read().decode("utf-8"))
        self.assertEqual(metrics["avatard_requests_total", (("command", "finger"), ("result", "ok"))], 1)
        self.assertEqual(
            metrics["avatard_requests_total", (("command", "finger"), ("result", "not-found"))], 1
        )

    def readAccessLog(self) -> list[str]:
        with open(self.accessLog, encoding="utf-8") as f:
            return f.read().splitlines()


class StockClientTests(SynchronousTestCase):
    """
    Debian's C{finger} client against C{--finger} on port 79 of 127.0.0.1.

    This needs the client, root (port 79 is privileged) and a free port 79.
    Under CI (C{CI=true}), which runs as root with the client installed,
    a missing one fails the test; elsewhere it is skipped with its reason.
    """

    def setUp(self) -> None:
        problem = None
        client = shutil.which("finger")
        if client is None:
            problem = "the finger client is not installed (apt-get install finger)"
        elif os.geteuid() != 0:
            problem = "binding port 79 needs root"
        else:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", 79))
                except OSError as e:
                    problem = f"port 79 of 127.0.0.1 is not free: {e}"
        if problem is not None:
            if os.environ.get("CI") == "true":
                self.fail(problem)
            raise SkipTest(problem)
        assert client is not None
        self.client = client
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        self.daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--finger",
            "tcp:79:interface=127.0.0.1",
        )
        self.addCleanup(self.daemon.stop, signal.SIGKILL)
        self.assertEqual(self.daemon.addresses[1:], ["finger 127.0.0.1:79"], self.daemon.text())

    def finger(self, *arguments: str) -> str:
        result = subprocess.run(
            [self.client, *arguments], capture_output=True, text=True, timeout=30, check=False
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_fingerAndFingerLongPrintTheAvatar(self) -> None:
        """
        C{finger yoen@127.0.0.1} and C{finger -l yoen@127.0.0.1} print the
        text C{WHO yoen} renders.
        """
        self.assertEqual(self.finger("yoen@127.0.0.1").strip().splitlines()[-1], YOEN)
        self.assertEqual(self.finger("-l", "yoen@127.0.0.1").strip().splitlines()[-1], YOEN)

    def test_unknownUserAndListing(self) -> None:
        """
        An unknown login prints the no-such-user line; C{finger @host}
        (list every user) prints the refusal.
        """
        self.assertEqual(self.finger("nobody@127.0.0.1").strip().splitlines()[-1], "finger: no such user")
        self.assertEqual(
            self.finger("@127.0.0.1").strip().splitlines()[-1],
            "finger: listing users is refused, ask for one login",
        )
