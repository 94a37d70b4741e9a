"""
L{ReopenOnHangup}: log files reopened on SIGHUP.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.logfile import LogFile
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from avatard.ops.hangup import ReopenOnHangup


@implementer(IReactorFromThreads)
class RecordingReactor:
    def __init__(self) -> None:
        self.calls: list[Callable[..., object]] = []

    def callFromThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        self.calls.append(callable)


class ReopenTests(SynchronousTestCase):
    """
    L{ReopenOnHangup}.
    """

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        self.path = os.path.join(directory, "avatard.log")
        self.logFile = LogFile.fromFullPath(self.path)
        self.addCleanup(self.logFile.close)
        self.reactor = RecordingReactor()

    def test_reopenMovesNewLinesToANewFile(self) -> None:
        """
        After a rename and a reopen, lines go to a new file at the path;
        reopeners are called; one line says so.
        """
        called: list[str] = []
        service = ReopenOnHangup(self.reactor, [lambda: called.append("access")], lambda: [self.logFile])
        self.logFile.write("before\n")
        os.rename(self.path, self.path + ".1")
        with capturedLogs() as events:
            service.reopen()
        self.logFile.write("after\n")
        self.logFile.flush()
        with open(self.path + ".1") as old, open(self.path) as new:
            self.assertEqual((old.read(), new.read()), ("before\n", "after\n"))
        self.assertEqual(called, ["access"])
        self.assertEqual([e["log_format"] for e in events], ["SIGHUP: log files reopened"])

    def test_failureIsOneLine(self) -> None:
        """
        A log that cannot be reopened is named in one error line, under the
        name log filters know, C{avatard.logs.ReopenOnHangup}.
        """

        def refuse() -> None:
            raise PermissionError(13, "Permission denied", "/var/log/avatard/access.log")

        service = ReopenOnHangup(self.reactor, [refuse], list)
        with capturedLogs() as events:
            service.reopen()
        [e] = events
        self.assertEqual(e["log_level"], LogLevel.error)
        self.assertEqual(e["log_namespace"], "avatard.logs.ReopenOnHangup")
        self.assertEqual(
            formatEvent(e), "SIGHUP: cannot reopen /var/log/avatard/access.log: Permission denied"
        )

    def test_signalHandlerInstalledAndRestored(self) -> None:
        """
        Started, the service handles SIGHUP by handing the reopening to the
        reactor thread, which reopens the logs; stopped, it puts the
        previous handler back.
        """
        previous = signal.getsignal(signal.SIGHUP)
        called: list[str] = []
        service = ReopenOnHangup(self.reactor, [lambda: called.append("access")], list)
        service.startService()
        try:
            handler = signal.getsignal(signal.SIGHUP)
            assert callable(handler)
            handler(signal.SIGHUP, None)
            self.assertEqual(called, [])
            with capturedLogs() as events:
                for call in self.reactor.calls:
                    call()
            self.assertEqual(called, ["access"])
            self.assertEqual([e["log_format"] for e in events], ["SIGHUP: log files reopened"])
        finally:
            service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
