"""
The HAProxy configuration in C{contrib/haproxy/}, run for real in front of
two nodes on PostgreSQL, where C{haproxy} is installed (it is not a
dependency: elsewhere these tests are skipped, saying so; under CI,
C{CI=true}, they fail).  The nodes listen as the configuration says they
must, on C{haproxy:} ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.backends import PostgresBackend, connectPostgres
from tests.daemon import REPO, Daemon, receiveLines, waitFor
from tests.e2e.test_proxy import oneShots, systemProgram
from tests.pgcluster import freePort

CONFIG = os.path.join(REPO, "contrib", "haproxy", "avatard.cfg")


def haproxy() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
    )
    if found is None:
        problem = "haproxy is not installed (apt-get install haproxy): the HAProxy example is not run"
        if os.environ.get("CI") == "true":
            raise AssertionError(problem)
        raise SkipTest(problem)
    return found


class ConfigTests(SynchronousTestCase):
    def test_configIsValid(self) -> None:
        """
        C{haproxy -c} accepts the configuration as committed.
        """
        result = subprocess.run([haproxy(), "-c", "-f", CONFIG], capture_output=True, text=True, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class TwoNodesTests(PostgresBackend, SynchronousTestCase):
    """
    Two nodes behind HAProxy.  Each node reads its own schema here, where
    user C{node} says which node it is, only so that the test can tell
    which node answered.
    """

    def setUp(self) -> None:
        binary = haproxy()
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        self.nodes: list[Daemon] = []
        for number in (1, 2):
            db = self.tutorialDatabase()
            with connectPostgres(db) as connection:
                connection.execute("INSERT INTO users VALUES ('node', %s, 'Node')", (str(number),))
            node = Daemon(
                directory, "--db", db, "--port", "haproxy:tcp:0:interface=127.0.0.1", "--access-log", "-"
            )
            self.addCleanup(node.stop, signal.SIGKILL)
            self.nodes.append(node)
        self.port = freePort()
        environment = dict(
            os.environ,
            AVATARD_FRONTEND=f"127.0.0.1:{self.port}",
            AVATARD_NODE1=f"127.0.0.1:{self.nodes[0].port}",
            AVATARD_NODE2=f"127.0.0.1:{self.nodes[1].port}",
        )
        # A second file adds the statistics socket the tests read the
        # health checks from; the configuration itself is as shipped.  The
        # socket's path is short: a UNIX socket's name is 107 bytes at most.
        short = tempfile.mkdtemp(prefix="haproxy")
        self.addCleanup(shutil.rmtree, short, True)
        self.statsSocket = os.path.join(short, "stats.sock")
        extra = os.path.join(short, "stats.cfg")
        with open(extra, "w") as f:
            f.write(f"global\n    stats socket {self.statsSocket} mode 600 level admin\n")
        self.proxy = subprocess.Popen(
            [binary, "-db", "-f", CONFIG, "-f", extra],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(self.proxy.wait, 10)
        self.addCleanup(self.proxy.terminate)
        self.assertTrue(waitFor(self._listening, 10), "haproxy does not listen")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def whichNode(self, s: socket.socket) -> bytes:
        s.sendall(b"WHO node\n")
        return receiveLines(s, 1)

    def test_connectionsAreSpreadAndSurviveANodeLoss(self) -> None:
        """
        Clients connected at once are spread over both nodes; with one node
        killed, every new client is answered by the other.
        """
        clients = [self.connect() for _ in range(4)]
        try:
            answers = {self.whichNode(s) for s in clients}
        finally:
            for s in clients:
                s.close()
        self.assertEqual(
            answers,
            {
                b"OK Mr 'Node 1' is connected under 'node'\r\n",
                b"OK Mr 'Node 2' is connected under 'node'\r\n",
            },
        )
        self.nodes[0].stop(signal.SIGKILL)
        started = time.monotonic()
        for _ in range(10):
            with self.connect() as s:
                self.assertEqual(self.whichNode(s), b"OK Mr 'Node 2' is connected under 'node'\r\n")
        self.assertLess(time.monotonic() - started, 5.0)

    def serverStates(self) -> dict[str, tuple[str, str]]:
        """
        @return: each node's state and last health check's result, as
            HAProxy's statistics give them (C{UP} and C{L7OK} when green).
        """
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.statsSocket)
            s.sendall(b"show stat\n")
            text = b"".join(iter(lambda: s.recv(65536), b"")).decode()
        lines = text.splitlines()
        columns = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(columns, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: (row["status"], row["check_status"])
            for row in rows
            if row["pxname"] == "avatard_nodes" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def test_healthChecksGreen(self) -> None:
        """
        HAProxy's health checks, which send a PROXY header of their own,
        pass on both nodes: each is up, its last check answered C{OK
        pong}; the nodes log the checks as HAProxy's own connections.
        """
        green = {"node1": ("UP", "L7OK"), "node2": ("UP", "L7OK")}
        self.assertTrue(waitFor(lambda: self.serverStates() == green, 15), self.serverStates())
        for node in self.nodes:
            self.assertIn("PING ok", node.text())
            self.assertNotIn("without a valid PROXY header", node.text())

    def test_nodesSeeTheRealClient(self) -> None:
        """
        Each node sees, and logs, the real address of the client it
        serves, port included, not HAProxy's.
        """
        clients = [
            socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=(f"127.0.0.{n}", 0))
            for n in (2, 3, 4, 5)
        ]
        try:
            answers = [(s.getsockname(), self.whichNode(s)) for s in clients]
        finally:
            for s in clients:
                s.close()
        served = set()
        for (host, port), answer in answers:
            number = int(answer.split(b"'Node ")[1][:1])
            served.add(number)
            node = self.nodes[number - 1]
            line = f"{host}:{port} WHO ok"
            self.assertTrue(waitFor(lambda node=node, line=line: line in node.text()), node.text())
        self.assertEqual(served, {1, 2})

    def test_oneShotClientsAnswered(self) -> None:
        """
        C{nc -N} one-shot clients through HAProxy, which end their input
        right after their request, are answered: 20 of 20.
        """
        nc = systemProgram("nc", "netcat-openbsd")
        replies = oneShots(nc, self.port, b"WHO node\n", 20)
        self.assertEqual(
            [
                reply
                in (
                    b"OK Mr 'Node 1' is connected under 'node'\r\n",
                    b"OK Mr 'Node 2' is connected under 'node'\r\n",
                )
                for reply in replies
            ],
            [True] * 20,
            replies,
        )
