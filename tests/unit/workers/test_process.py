"""
L{avatard.workers.process}: the twistd process's end of a worker, and how
workers are spawned.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.workers.channel import encode
from avatard.workers.process import (
    SOCKETS_VARIABLE,
    WORKER_VARIABLE,
    WorkerGone,
    WorkerProcess,
    WorkerSpawner,
)
from avatard.workers.sockets import BoundSocket, Listener
from avatard.workers.supervisor import IWorker, Supervisor


class FakeProcessTransport:
    """
    A process transport that records what is written and signalled.
    """

    pid = 4242

    def __init__(self) -> None:
        self.written: list[tuple[int, bytes]] = []
        self.signals: list[str] = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class RecordingSupervisor(Supervisor):
    """
    A supervisor that records what its workers tell it.
    """

    def __init__(self) -> None:
        super().__init__(lambda index, s: None, 1, Clock(), 1.0, lambda: None)  # type: ignore[arg-type,return-value]
        self.told: list[tuple[Any, ...]] = []

    def workerStarted(self, worker: Any) -> None:
        self.told.append(("started", worker.index))

    def workerReady(self, worker: Any) -> None:
        self.told.append(("ready", worker.index))

    def workerEnded(self, worker: Any, exitCode: int | None, signal: int | None) -> None:
        self.told.append(("ended", worker.index, exitCode, signal))


class WorkerProcessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.supervisor = RecordingSupervisor()
        self.events: list[LogEvent] = []
        self.worker = WorkerProcess(2, self.supervisor, self.events.append)
        self.transport = FakeProcessTransport()
        self.worker.makeConnection(self.transport)

    def test_isAWorker(self) -> None:
        """
        It is an L{IWorker}, with the process's pid.
        """
        self.assertTrue(verifyObject(IWorker, self.worker))
        self.assertEqual(self.worker.pid, 4242)

    def test_messagesReachTheSupervisorAndTheLog(self) -> None:
        """
        C{started} and C{READY=1} are told to the supervisor; log records
        are published naming the worker, even split across reads.
        """
        data = encode("started", {}) + encode("notify", {"STATUS": "x"}) + encode("notify", {"READY": "1"})
        data += encode("log", {"text": "hello", "level": "info", "namespace": "avatard.x"})
        self.worker.childDataReceived(1, data[:10])
        self.worker.childDataReceived(1, data[10:])
        self.assertEqual(self.supervisor.told, [("started", 2), ("ready", 2)])
        self.assertEqual(self.worker.status, "x")
        self.assertEqual([formatEvent(e) for e in self.events], ["worker 2: hello"])

    def test_standardErrorIsLoggedAsErrors(self) -> None:
        """
        What a worker writes on its standard error (a traceback before its
        log is set up) is logged line by line, as errors naming it.
        """
        self.worker.childDataReceived(2, b"Traceback (most recent call last):\n  boom\n")
        self.assertEqual(
            [formatEvent(e) for e in self.events],
            ["worker 2: Traceback (most recent call last):", "worker 2:   boom"],
        )
        self.assertEqual({e["log_level"] for e in self.events}, {LogLevel.error})

    def test_endTold(self) -> None:
        """
        The end of the process is told with its exit status or signal.
        """
        self.worker.processEnded(Failure(ProcessDone(0)))
        self.worker.processEnded(Failure(ProcessTerminated(None, 9)))
        self.worker.processEnded(Failure(ProcessTerminated(1)))
        self.assertEqual(
            self.supervisor.told, [("ended", 2, 0, None), ("ended", 2, None, 9), ("ended", 2, 1, None)]
        )

    def test_figuresAskedAndAnswered(self) -> None:
        """
        Figures are asked on the worker's standard input and given once it
        answers; a worker that ends first fails the question.
        """
        answered = self.worker.askFigures()
        self.assertEqual(self.transport.written, [(0, b"figures\n")])
        self.assertNoResult(answered)
        self.worker.childDataReceived(1, encode("figures", [["a"]]))
        self.assertEqual(self.successResultOf(answered), [["a"]])
        unanswered = self.worker.askFigures()
        self.worker.processEnded(Failure(ProcessDone(0)))
        self.failureResultOf(unanswered, WorkerGone)

    def test_signals(self) -> None:
        """
        Signals go to the process.
        """
        self.worker.signal("HUP")
        self.assertEqual(self.transport.signals, ["HUP"])


class FakePort:
    def __init__(self, fileno: int) -> None:
        self._fileno = fileno

    def fileno(self) -> int:
        return self._fileno


class SpawningReactor:
    def __init__(self) -> None:
        self.spawned: list[dict[str, Any]] = []

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], **keywords: Any) -> None:
        self.spawned.append({"protocol": protocol, "executable": executable, "args": args, **keywords})


class SpawnerTests(SynchronousTestCase):
    def test_spawnedWithTheSocketsAndTheRole(self) -> None:
        """
        A worker is C{python -m avatard.workers.worker} with the daemon's
        arguments; its environment says which worker it is and where its
        sockets are, and has no C{NOTIFY_SOCKET}; a socket systemd passed
        is at the descriptor systemd passed it as, with C{LISTEN_FDS}
        again, the others after it.
        """
        reactor = SpawningReactor()
        sockets = [
            BoundSocket(Listener("--port", "tcp:0"), [FakePort(11), FakePort(21), FakePort(31)], None),  # type: ignore[list-item]
            BoundSocket(Listener("--port", "systemd:domain=INET:index=0"), [FakePort(12)], 3),  # type: ignore[list-item]
        ]
        self.patch(os, "environ", {"NOTIFY_SOCKET": "@x", "LISTEN_FDNAMES": "avatard.socket", "HOME": "/"})
        worker = WorkerSpawner(reactor, ["--db", "x"], sockets, 3)(2, RecordingSupervisor())
        [spawned] = reactor.spawned
        self.assertIs(spawned["protocol"], worker)
        self.assertEqual(spawned["args"][1:], ["-m", "avatard.workers.worker", "--db", "x"])
        self.assertEqual(spawned["childFDs"], {0: "w", 1: "r", 2: "r", 4: 21, 3: 12})
        env = spawned["env"]
        self.assertNotIn("NOTIFY_SOCKET", env)
        self.assertEqual((env[WORKER_VARIABLE], env[SOCKETS_VARIABLE]), ("2/3", "4,3"))
        self.assertEqual(env["LISTEN_FDS"], "1")
        self.assertEqual(worker.index, 2)
