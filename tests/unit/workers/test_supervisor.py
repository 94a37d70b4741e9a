"""
L{avatard.workers.supervisor}: starting, replacing and stopping workers,
the restart budget, and readiness of the whole group.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from avatard.workers.supervisor import RESTART_WINDOW, RESTARTS, IWorker, Supervisor


@implementer(IWorker)
class FakeWorker:
    """
    A worker that records the signals it is sent.
    """

    def __init__(self, index: int, pid: int) -> None:
        self.index = index
        self.pid = pid
        self.signals: list[str] = []
        self.status = ""

    def signal(self, name: str) -> None:
        self.signals.append(name)


class Spawner:
    """
    Makes L{FakeWorker}s, with increasing pids, and keeps them all.
    """

    def __init__(self) -> None:
        self.spawned: list[FakeWorker] = []

    def __call__(self, index: int, supervisor: Supervisor) -> FakeWorker:
        worker = FakeWorker(index, 1000 + len(self.spawned))
        self.spawned.append(worker)
        return worker


class SupervisorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.spawner = Spawner()
        self.stops: list[bool] = []
        self.supervisor = Supervisor(
            self.spawner, 3, self.clock, stopTimeout=10.0, stopGroup=lambda: self.stops.append(True)
        )

    def start(self) -> None:
        self.supervisor.startService()

    def test_fakeProvidesIWorker(self) -> None:
        """
        The fake is an L{IWorker}, as the real one is.
        """
        self.assertTrue(verifyObject(IWorker, FakeWorker(1, 1)))

    def test_startsEveryWorker(self) -> None:
        """
        Starting starts workers 1 to N.
        """
        self.start()
        self.assertEqual([w.index for w in self.spawner.spawned], [1, 2, 3])
        self.assertEqual(sorted(self.supervisor.workers), [1, 2, 3])

    def test_aDeadWorkerIsReplacedWithOneLine(self) -> None:
        """
        A worker killed by a signal is replaced at once, under its index,
        with one warning naming it, its pid, how it ended, and its
        replacement's pid.
        """
        self.start()
        dead = self.supervisor.workers[2]
        with capturedLogs() as events:
            self.supervisor.workerEnded(dead, None, 9)
        replacement = self.supervisor.workers[2]
        self.assertIsNot(replacement, dead)
        self.assertEqual(len(self.spawner.spawned), 4)
        self.assertEqual(len(events), 1)
        self.assertEqual(
            formatEvent(events[0]),
            "Worker 2 (pid 1001) was killed by signal 9; started worker 2 again (pid 1003)",
        )
        self.assertEqual(self.stops, [])

    def test_exitStatusNamed(self) -> None:
        """
        A worker that exits with a status other than 0 is replaced too.
        """
        self.start()
        with capturedLogs() as events:
            self.supervisor.workerEnded(self.supervisor.workers[1], 1, None)
        self.assertIn("exited with status 1", formatEvent(events[0]))
        self.assertEqual(len(self.spawner.spawned), 4)

    def test_moreThanFiveRestartsWithinAMinuteStopTheGroup(self) -> None:
        """
        Five workers are replaced within a minute; the sixth death within
        that minute stops the group, with one error line saying why, and
        no replacement.
        """
        self.start()
        for _ in range(RESTARTS):
            self.clock.advance(1)
            self.supervisor.workerEnded(self.supervisor.workers[1], None, 9)
        self.assertEqual(len(self.spawner.spawned), 3 + RESTARTS)
        self.assertEqual(self.stops, [])
        with capturedLogs() as events:
            self.supervisor.workerEnded(self.supervisor.workers[1], None, 9)
        self.assertEqual(self.stops, [True])
        self.assertTrue(self.supervisor.failed)
        self.assertEqual(len(self.spawner.spawned), 3 + RESTARTS)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"], LogLevel.error)
        self.assertIn(
            "after 5 workers were replaced within 60 s: stopping every worker", formatEvent(events[0])
        )

    def test_restartsOlderThanTheWindowDoNotCount(self) -> None:
        """
        Deaths spread over more than the window never stop the group.
        """
        self.start()
        for _ in range(3 * RESTARTS):
            self.clock.advance(RESTART_WINDOW / RESTARTS)
            self.supervisor.workerEnded(self.supervisor.workers[3], None, 9)
        self.assertEqual(self.stops, [])
        self.assertEqual(len(self.spawner.spawned), 3 + 3 * RESTARTS)

    def test_aWorkerStoppedFromOutsideStopsTheGroup(self) -> None:
        """
        A worker that stopped gracefully (status 0) while the group runs
        was stopped by someone else (systemd signalling every process of
        the unit): it is not replaced, and the group stops.
        """
        self.start()
        with capturedLogs():
            self.supervisor.workerEnded(self.supervisor.workers[2], 0, None)
        self.assertEqual(self.stops, [True])
        self.assertFalse(self.supervisor.failed)
        self.assertEqual(len(self.spawner.spawned), 3)

    def test_stopTerminatesEveryWorkerAndReplacesNone(self) -> None:
        """
        Stopping sends SIGTERM to every worker; one that dies meanwhile,
        however it ends, is not replaced; the stop completes once every
        worker has ended.
        """
        self.start()
        stopped = self.supervisor.stopService()
        self.assertEqual([w.signals for w in self.spawner.spawned], [["TERM"]] * 3)
        workers = dict(self.supervisor.workers)
        self.supervisor.workerEnded(workers[1], None, 9)
        self.supervisor.workerEnded(workers[2], 0, None)
        self.assertNoResult(stopped)
        self.supervisor.workerEnded(workers[3], 0, None)
        self.successResultOf(stopped)
        self.assertEqual(len(self.spawner.spawned), 3)
        self.assertEqual(self.stops, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_workersStillRunningAfterTheTimeoutAreKilled(self) -> None:
        """
        A worker still running C{stopTimeout} seconds into the stop is
        killed.
        """
        self.start()
        stopped = self.supervisor.stopService()
        self.supervisor.workerEnded(self.supervisor.workers[1], 0, None)
        with capturedLogs():
            self.clock.advance(10)
        self.assertEqual(
            [w.signals for w in self.spawner.spawned], [["TERM"], ["TERM", "KILL"], ["TERM", "KILL"]]
        )
        for worker in list(self.supervisor.workers.values()):
            self.supervisor.workerEnded(worker, None, 9)
        self.successResultOf(stopped)

    def test_readyOnceEveryWorkerIsReady(self) -> None:
        """
        The group is ready once every worker is ready at once: not when one
        of them, ready before, died and its replacement is not; and only a
        current worker's readiness counts.
        """
        self.start()
        ready = self.supervisor.whenAllReady()
        first = self.supervisor.workers[1]
        self.supervisor.workerReady(first)
        self.supervisor.workerReady(self.supervisor.workers[2])
        with capturedLogs():
            self.supervisor.workerEnded(first, None, 9)
        self.supervisor.workerReady(first)
        self.supervisor.workerReady(self.supervisor.workers[3])
        self.assertNoResult(ready)
        with capturedLogs() as events:
            self.supervisor.workerReady(self.supervisor.workers[1])
        self.successResultOf(ready)
        self.assertEqual([e["log_format"] for e in events], ["All {count} workers ready"])
        self.successResultOf(self.supervisor.whenAllReady())

    def test_readinessWaitedForIsCancelledByTheStop(self) -> None:
        """
        Stopping before every worker is ready cancels the wait.
        """
        self.start()
        ready = self.supervisor.whenAllReady()
        self.supervisor.stopService()
        self.failureResultOf(ready)

    def test_hangupReachesEveryStartedWorker(self) -> None:
        """
        SIGHUP goes to every worker that has started serving (one still
        starting has not yet the handler that keeps it from dying of it).
        """
        self.start()
        self.supervisor.workerStarted(self.supervisor.workers[1])
        self.supervisor.workerStarted(self.supervisor.workers[3])
        self.supervisor.hangup()
        self.assertEqual([w.signals for w in self.spawner.spawned], [["HUP"], [], ["HUP"]])
