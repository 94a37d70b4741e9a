"""
Log files reopened on C{SIGHUP}: twistd's own and the access log, so that a
log rotation tool can rename them and have new lines go to new files.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.logfile import BaseLogFile

from avatard.ops.twistdlog import mainLogFiles
from avatard.text import terminalSafe

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.logs.ReopenOnHangup")


class ReopenOnHangup(Service):
    """
    On C{SIGHUP}, reopens the daemon's log file and the access log, so that
    a log rotation tool can rename them and have new lines go to new files.

    The signal handler only hands the work to the reactor thread; it is
    installed when the service starts and the previous one put back when
    it stops.

    @param reopeners: what to call to reopen each log besides twistd's own.
    """

    name = "reopen-on-hangup"

    def __init__(
        self,
        reactor: IReactorFromThreads,
        reopeners: Iterable[Callable[[], None]] = (),
        mainLogs: Callable[[], list[BaseLogFile]] = mainLogFiles,
    ) -> None:
        self.reactor = reactor
        self.reopeners = list(reopeners)
        self.mainLogs = mainLogs
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _hangup(self, number: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self.reopen)

    def reopen(self) -> None:
        """
        Reopen every log file now.
        """
        problems = []
        for logFile in self.mainLogs():
            try:
                logFile.reopen()
            except OSError as e:
                problems.append(f"{logFile.path}: {e.strerror}")
        for reopen in self.reopeners:
            try:
                reopen()
            except OSError as e:
                problems.append(f"{e.filename}: {e.strerror}")
        if problems:
            _log.error("SIGHUP: cannot reopen {problems}", problems=terminalSafe("; ".join(problems)))
        else:
            _log.info("SIGHUP: log files reopened")
