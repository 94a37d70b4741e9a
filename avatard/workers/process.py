"""
Worker processes, as the twistd process runs them: spawned with the
group's listening sockets, heard through their pipes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.workers.channel import Lines, decode, workerEvent
from avatard.workers.sockets import BoundSocket, childDescriptors
from avatard.workers.supervisor import IWorker, Supervisor

WORKER_VARIABLE = "AVATARD_WORKER"
"""
Tells a worker which it is and how many there are: C{K/N}.
"""

SOCKETS_VARIABLE = "AVATARD_WORKER_SOCKETS"
"""
Tells a worker the descriptors of its listening sockets, in the order of
its endpoint descriptions, separated by commas.
"""


class WorkerGone(Exception):
    """
    The worker ended before it answered.
    """


@implementer(IWorker)
class WorkerProcess(ProcessProtocol):
    """
    The twistd process's end of one worker: its messages are told to the
    supervisor (readiness, start, end) or written to the log; what it
    writes on its standard error is logged, line by line, as errors.
    """

    def __init__(
        self, index: int, supervisor: Supervisor, publish: Callable[[LogEvent], None] = globalLogPublisher
    ) -> None:
        self.index = index
        self.supervisor = supervisor
        self.publish = publish
        self.pid: int | None = None
        self.status = ""
        self._output = Lines(self._message)
        self._errors = Lines(self._error)
        self._figures: deque[Deferred[Any]] = deque()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1:
            self._output.feed(data)
        elif childFD == 2:
            self._errors.feed(data)

    def _message(self, line: bytes) -> None:
        try:
            kind, value = decode(line)
        except (ValueError, UnicodeDecodeError):
            self._text(line, LogLevel.info)
            return
        if kind == "log" and isinstance(value, dict):
            self.publish(workerEvent(self.index, value))
        elif kind == "notify" and isinstance(value, dict):
            self.status = str(value.get("STATUS", self.status))
            if value.get("READY") == "1":
                self.supervisor.workerReady(self)
        elif kind == "started":
            self.supervisor.workerStarted(self)
        elif kind == "figures" and self._figures:
            self._figures.popleft().callback(value)
        else:
            self._text(line, LogLevel.info)

    def _error(self, line: bytes) -> None:
        self._text(line, LogLevel.error)

    def _text(self, line: bytes, level: Any) -> None:
        record = {
            "text": line.decode("utf-8", "replace"),
            "level": level.name,
            "namespace": "avatard.workers",
        }
        self.publish(workerEvent(self.index, record))

    def askFigures(self) -> Deferred[Any]:
        """
        @return: a L{Deferred} that fires with the worker's figures, or
            fails with L{WorkerGone}.
        """
        d: Deferred[Any] = Deferred()
        if self.transport is None or self.pid is None:
            d.errback(WorkerGone())
            return d
        self._figures.append(d)
        self.transport.writeToChild(0, b"figures\n")
        return d

    def signal(self, name: str) -> None:
        if self.transport is None:
            return
        with contextlib.suppress(ProcessExitedAlready):
            self.transport.signalProcess(name)

    def processEnded(self, reason: Failure) -> None:
        self._output.flush()
        self._errors.flush()
        while self._figures:
            self._figures.popleft().errback(WorkerGone())
        self.supervisor.workerEnded(
            self, getattr(reason.value, "exitCode", None), getattr(reason.value, "signal", None)
        )


class WorkerSpawner:
    """
    Spawns worker C{K} of C{count}: C{python -m avatard.workers.worker}
    with the daemon's own arguments, the group's sockets as descriptors
    (L{childDescriptors}), and the environment of the twistd process less
    C{NOTIFY_SOCKET} (only the twistd process tells systemd), with
    C{LISTEN_FDS} again when systemd passed sockets.
    """

    def __init__(
        self, reactor: Any, arguments: Sequence[str], sockets: Sequence[BoundSocket], count: int
    ) -> None:
        self.reactor = reactor
        self.arguments = list(arguments)
        self.sockets = list(sockets)
        self.count = count

    def __call__(self, index: int, supervisor: Supervisor) -> IWorker:
        mapping, numbers = childDescriptors(self.sockets, index)
        environment = dict(os.environ)
        environment.pop("NOTIFY_SOCKET", None)
        names = environment.get("LISTEN_FDNAMES")
        if names and any(bound.inherited is not None for bound in self.sockets):
            # Twisted took LISTEN_FDS and LISTEN_PID out of the environment
            # when it read them; the worker passes its sockets at the same
            # descriptors, and sets LISTEN_PID to its own pid.
            environment["LISTEN_FDS"] = str(len(names.split(":")))
        environment[WORKER_VARIABLE] = f"{index}/{self.count}"
        environment[SOCKETS_VARIABLE] = ",".join(str(number) for number in numbers)
        worker = WorkerProcess(index, supervisor)
        self.reactor.spawnProcess(
            worker,
            sys.executable,
            [sys.executable, "-m", "avatard.workers.worker", *self.arguments],
            env=environment,
            childFDs={0: "w", 1: "r", 2: "r", **mapping},
        )
        return worker
