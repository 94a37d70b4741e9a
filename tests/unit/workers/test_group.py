"""
L{avatard.workers.group}: the twistd process of a group, its status and
the order it stops in.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from avatard.workers.group import GroupService
from tests.unit.workers.test_supervisor import Spawner


class GroupServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.spawner = Spawner()
        self.group = GroupService(MemoryReactorClock(), [], [], 2, "sqlite:x", 5.0, spawn=self.spawner)

    def test_statusNamesEveryWorker(self) -> None:
        """
        The group's status says how many workers run, and what each last
        said it does, less where it serves.
        """
        with capturedLogs():
            self.group.startService()
        self.addCleanup(self.stop)
        first, second = self.spawner.spawned
        first.status = "Serving on 127.0.0.1:8787: 3 connections open; 10 requests"
        second.status = "Checking the database before serving on 127.0.0.1:8787"
        self.assertEqual(
            self.group.status(), "2 of 2 workers running; worker 1: 3 connections open; 10 requests"
        )

    def stop(self) -> None:
        with capturedLogs():
            stopped = self.group.stopService()
            for worker in list(self.group.supervisor.workers.values()):
                self.group.supervisor.workerEnded(worker, 0, None)
        self.successResultOf(stopped)

    def test_stopWaitsForEveryWorker(self) -> None:
        """
        Stopping the group stops every worker; the helpers stop, and the
        stop line is written, only once every worker has ended.
        """
        with capturedLogs():
            self.group.startService()
        with capturedLogs() as events:
            stopped = self.group.stopService()
            self.assertEqual([w.signals for w in self.spawner.spawned], [["TERM"], ["TERM"]])
            self.assertNoResult(stopped)
            self.assertTrue(all(helper.running for helper in self.group.helpers))
            for worker in self.spawner.spawned:
                self.group.supervisor.workerEnded(worker, 0, None)
            self.successResultOf(stopped)
        self.assertFalse(any(helper.running for helper in self.group.helpers))
        self.assertTrue(formatEvent(events[-1]).startswith("avatard stopped after "), formatEvent(events[-1]))
