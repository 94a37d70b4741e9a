"""
The group's supervisor: it starts the workers, replaces one that dies,
stops them all together, and knows when every one of them is ready.

It knows workers only as L{IWorker}s, made by a spawner it is given:
L{avatard.workers.process} spawns real processes; tests spawn fakes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.workers.Supervisor")

RESTARTS = 5
"""
Workers that may be replaced within L{RESTART_WINDOW} seconds; one more
death stops the group.
"""

RESTART_WINDOW = 60.0
"""
Seconds over which L{RESTARTS} are counted.
"""

STOP_GRACE = 5.0
"""
Seconds a stopping worker is given beyond C{--shutdown-timeout} (to
close its pool and write its last lines) before it is killed.
"""


class IWorker(Interface):
    """
    One worker process, as the supervisor sees it.
    """

    index = Attribute("Which worker it is: 1 to the group's count; a replacement keeps the index.")
    pid = Attribute("Its process id.")
    status = Attribute("What it last said it does (its STATUS= line), or an empty string.")

    def signal(name: str) -> None:
        """
        Send it a signal: C{"TERM"}, C{"HUP"} or C{"KILL"}.  A worker that
        has ended already is left alone.
        """


Spawner = Callable[[int, "Supervisor"], IWorker]
"""
Starts worker C{index}, which reports to the supervisor given, and
returns it.
"""


def describeEnd(exitCode: int | None, signal: int | None) -> str:
    """
    @return: how a process ended, for a log line.
    """
    if signal is not None:
        return f"was killed by signal {signal}"
    return f"exited with status {exitCode}"


class Supervisor(Service):
    """
    Runs C{count} workers (numbered 1 to C{count}) for as long as it runs.

    A worker that dies (killed by a signal, or exiting with a status other
    than 0) is replaced at once, with one log line, unless more than
    L{RESTARTS} have been replaced within L{RESTART_WINDOW} seconds: then
    the group stops (C{stopGroup}), with one line saying why.  A worker
    that exits with status 0 has stopped gracefully, which it does only
    when told to (SIGTERM): while the group runs, that means someone other
    than the supervisor stopped it, as systemd does when it signals every
    process of the unit; it is not replaced, and the group stops too.

    Stopping the supervisor (the group stops) sends SIGTERM to every
    worker, replaces none of them any more, and waits for them to end;
    those still running C{stopTimeout} seconds later are killed.

    @ivar workers: the running workers, by index.
    @ivar failed: whether the group stopped because workers kept dying.
    """

    name = "workers"

    def __init__(
        self,
        spawn: Spawner,
        count: int,
        clock: IReactorTime,
        stopTimeout: float,
        stopGroup: Callable[[], None],
        restarts: int = RESTARTS,
        window: float = RESTART_WINDOW,
    ) -> None:
        """
        @param stopGroup: stops the group (the whole process), once the
            supervisor decided it must.
        """
        self.spawn = spawn
        self.count = count
        self.clock = clock
        self.stopTimeout = stopTimeout
        self.stopGroup = stopGroup
        self.restarts = restarts
        self.window = window
        self.workers: dict[int, IWorker] = {}
        self.failed = False
        self._started: set[int] = set()
        self._ready: set[int] = set()
        self._allReady = False
        self._waitingReady: list[Deferred[object]] = []
        self._restartTimes: deque[float] = deque()
        self._stopping = False
        self._stopped: Deferred[None] | None = None
        self._killTimer: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        for index in range(1, self.count + 1):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self.workers[index] = self.spawn(index, self)

    def _current(self, worker: IWorker) -> bool:
        return self.workers.get(worker.index) is worker

    def workerStarted(self, worker: IWorker) -> None:
        """
        C{worker} serves: it listens and handles its signals.
        """
        if self._current(worker):
            self._started.add(worker.index)

    def workerReady(self, worker: IWorker) -> None:
        """
        C{worker} is ready: it listens and its database answers.
        """
        if not self._current(worker) or self._stopping:
            return
        self._ready.add(worker.index)
        if len(self._ready) == self.count and not self._allReady:
            self._allReady = True
            _log.info("All {count} workers ready", count=self.count)
            waiting, self._waitingReady = self._waitingReady, []
            for d in waiting:
                d.callback(None)

    def whenAllReady(self) -> Deferred[object]:
        """
        @return: a L{Deferred} that fires once every worker has been ready
            at the same time (at once if that happened already).
        """
        if self._allReady:
            return succeed(None)
        d: Deferred[object] = Deferred(self._forget)
        self._waitingReady.append(d)
        return d

    def _forget(self, waiting: Deferred[object]) -> None:
        if waiting in self._waitingReady:
            self._waitingReady.remove(waiting)

    def workerEnded(self, worker: IWorker, exitCode: int | None, signal: int | None) -> None:
        """
        C{worker}'s process ended: with C{exitCode}, or killed by C{signal}.
        """
        if not self._current(worker):
            return
        index = worker.index
        del self.workers[index]
        self._started.discard(index)
        self._ready.discard(index)
        if self._stopping:
            if not self.workers:
                self._allStopped()
            return
        how = describeEnd(exitCode, signal)
        if exitCode == 0 and signal is None:
            _log.warn(
                "Worker {index} (pid {pid}) was stopped from outside the group: stopping every worker",
                index=index,
                pid=worker.pid,
            )
            self.stopGroup()
            return
        now = self.clock.seconds()
        times = self._restartTimes
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.restarts:
            self.failed = True
            _log.error(
                "Worker {index} (pid {pid}) {how}, after {restarts} workers were replaced "
                "within {window:g} s: stopping every worker",
                index=index,
                pid=worker.pid,
                how=how,
                restarts=len(times),
                window=self.window,
            )
            self.stopGroup()
            return
        times.append(now)
        self._spawn(index)
        _log.warn(
            "Worker {index} (pid {pid}) {how}; started worker {index} again (pid {new})",
            index=index,
            pid=worker.pid,
            how=how,
            new=self.workers[index].pid,
        )

    def hangup(self) -> None:
        """
        Send SIGHUP to every worker that serves (one still starting reads
        its files afresh anyway).
        """
        for index, worker in sorted(self.workers.items()):
            if index in self._started:
                worker.signal("HUP")

    def stopService(self) -> Deferred[None]:
        """
        Stop every worker: SIGTERM, then SIGKILL for those still running
        C{stopTimeout} seconds later.

        @return: a L{Deferred} that fires once every worker has ended.
        """
        super().stopService()
        if self._stopped is not None:
            return self._stopped
        self._stopping = True
        self._stopped = Deferred()
        stopped = self._stopped
        for d in list(self._waitingReady):
            d.cancel()
        if not self.workers:
            self._allStopped()
            return stopped
        for _, worker in sorted(self.workers.items()):
            worker.signal("TERM")
        self._killTimer = self.clock.callLater(self.stopTimeout, self._kill)
        return stopped

    def _kill(self) -> None:
        self._killTimer = None
        _log.warn(
            "Killing {count} workers still running {timeout:g} s into the shutdown",
            count=len(self.workers),
            timeout=self.stopTimeout,
        )
        for _, worker in sorted(self.workers.items()):
            worker.signal("KILL")

    def _allStopped(self) -> None:
        if self._killTimer is not None and self._killTimer.active():
            self._killTimer.cancel()
        self._killTimer = None
        if self._stopped is not None and not self._stopped.called:
            self._stopped.callback(None)
