"""
End to end under a pretend systemd: socket activation, readiness and
stopping notifications, C{STATS} over a real connection.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import REPO, Daemon, receiveLines
from tests.helpers import TUTORIAL_REPLIES, NotifySocket, parseStats, tutorialDatabase

LISTENFDS = os.path.join(REPO, "tests", "listenfds.py")


class SocketActivationTests(SynchronousTestCase):
    """
    The daemon started as systemd starts it: its listening socket passed
    as descriptor 3, C{NOTIFY_SOCKET} an abstract socket name.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))
        self.listener = socket.socket()
        self.addCleanup(self.listener.close)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        name = f"avatard-test-notify-{os.getpid()}-{self.port}"
        self.notify = NotifySocket("\0" + name)
        self.addCleanup(self.notify.close)
        self.daemon = Daemon(
            self.directory,
            "--db",
            self.db,
            "--port",
            "systemd:domain=INET:index=0",
            launcher=[sys.executable, LISTENFDS, str(self.listener.fileno())],
            extraEnvironment={"NOTIFY_SOCKET": "@" + name},
            passFds=[self.listener.fileno()],
        )
        self.addCleanup(self.daemon.stop, signal.SIGKILL)

    def test_readyServesAndStops(self) -> None:
        """
        The daemon serves the socket it was handed; READY=1 comes after a
        STATUS saying it checks the database, and with a STATUS saying where
        it serves; STATS counts the requests made; SIGTERM sends STOPPING=1
        and the daemon exits as twistd does.
        """
        ready = self.notify.waitFor("READY")
        self.assertEqual(ready["READY"], "1")
        self.assertTrue(self.notify.messages[0]["STATUS"].startswith("Checking the database"))
        self.assertTrue(ready["STATUS"].startswith(f"Serving on 127.0.0.1:{self.port}: "), ready)
        self.assertEqual(self.daemon.where, f"127.0.0.1:{self.port}", self.daemon.text())
        self.listener.close()
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\nWHO nobody\nPING\nSTATS\n")
            replies = receiveLines(s, 4).split(b"\r\n")
        self.assertEqual(replies[0] + b"\r\n", TUTORIAL_REPLIES["yoen"])
        stats = parseStats(replies[3] + b"\r\n")
        self.assertEqual((stats["requests.ok"], stats["requests.not-found"]), (3, 1))
        self.assertEqual((stats["connections.open"], stats["connections.total"]), (1, 1))
        self.assertEqual(self.daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        stopping = self.notify.waitFor("STOPPING")
        self.assertEqual(stopping["STOPPING"], "1")
        log = self.daemon.text()
        self.assertIn("avatard stopped after ", log)
        self.assertNotIn("Traceback", log)


class SeveralSocketsTests(SynchronousTestCase):
    """
    Several sockets handed over by systemd, one C{--port systemd:...} each,
    by index or by name (C{FileDescriptorName=}).
    """

    def test_eachSocketIsServedByIndexOrName(self) -> None:
        """
        Two inherited sockets, the first named by index and the second by
        name: both are served, and READY=1's STATUS names both.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        listeners = []
        for _ in range(2):
            listener = socket.socket()
            self.addCleanup(listener.close)
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            listeners.append(listener)
        first, second = (listener.getsockname()[1] for listener in listeners)
        name = f"avatard-test-notify-{os.getpid()}-{first}"
        notify = NotifySocket("\0" + name)
        self.addCleanup(notify.close)
        handed = f"{listeners[0].fileno()}=avatard.socket,{listeners[1].fileno()}=avatard-local.socket"
        daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            "systemd:domain=INET:index=0",
            "--port",
            "systemd:domain=INET:name=avatard-local.socket",
            launcher=[sys.executable, LISTENFDS, handed],
            extraEnvironment={"NOTIFY_SOCKET": "@" + name},
            passFds=[listener.fileno() for listener in listeners],
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        ready = notify.waitFor("READY")
        self.assertTrue(
            ready["STATUS"].startswith(f"Serving on 127.0.0.1:{first}, 127.0.0.1:{second}: "), ready
        )
        self.assertEqual(daemon.addresses, [f"127.0.0.1:{first}", f"127.0.0.1:{second}"], daemon.text())
        for listener in listeners:
            listener.close()
        for port, login in ((first, "yoen"), (second, "mohamed")):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"WHO %s\n" % login.encode())
                self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES[login])
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertNotIn("Traceback", daemon.text())

    def test_aNameSystemdDidNotPassRefusesTheStart(self) -> None:
        """
        A C{--port systemd:...:name=} that names no socket systemd passed
        ends the daemon with one line naming it.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            "systemd:domain=INET:index=0",
            "--port",
            "systemd:domain=INET:name=finger.socket",
            launcher=[sys.executable, LISTENFDS, str(listener.fileno())],
            passFds=[listener.fileno()],
        )
        self.assertEqual(daemon.wait(), 1)
        self.assertIn(
            "avatard: --port 'systemd:domain=INET:name=finger.socket': systemd passed no such socket",
            daemon.text(),
        )
        self.assertNotIn("Traceback", daemon.text())
