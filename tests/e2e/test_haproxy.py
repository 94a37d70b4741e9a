"""
The HAProxy configuration in C{contrib/haproxy/}, run for real in front of
two nodes on PostgreSQL, where C{haproxy} is installed (it is not a
dependency: elsewhere these tests are skipped, saying so).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.backends import PostgresBackend, connectPostgres
from tests.daemon import REPO, Daemon, receiveLines, waitFor
from tests.pgcluster import freePort

CONFIG = os.path.join(REPO, "contrib", "haproxy", "avatard.cfg")


def haproxy() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
    )
    if found is None:
        raise SkipTest("haproxy is not installed (apt-get install haproxy): the HAProxy example is not run")
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
            node = Daemon(directory, "--db", db, "--port", "tcp:0:interface=127.0.0.1")
            self.addCleanup(node.stop, signal.SIGKILL)
            self.nodes.append(node)
        self.port = freePort()
        environment = dict(
            os.environ,
            AVATARD_FRONTEND=f"127.0.0.1:{self.port}",
            AVATARD_NODE1=f"127.0.0.1:{self.nodes[0].port}",
            AVATARD_NODE2=f"127.0.0.1:{self.nodes[1].port}",
        )
        self.proxy = subprocess.Popen(
            [binary, "-db", "-f", CONFIG],
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
