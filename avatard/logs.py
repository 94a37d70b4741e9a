"""
The daemon's own log: lines that read well in the journal, and log files
reopened on C{SIGHUP}.

Under systemd, run C{twistd --logger=avatard.logs.observer ...}: when
standard output is the journal (systemd sets C{$JOURNAL_STREAM} to its
device and inode), each line goes out without a timestamp (the journal
adds its own) and with a C{<N>} priority prefix the journal reads as the
line's level; otherwise lines are written with timestamps, as twistd
writes them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import IO, Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    formatEvent,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.logfile import BaseLogFile
from zope.interface import implementer

from avatard.text import terminalSafe

PRIORITIES = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}
"""
syslog priorities of Twisted's log levels, as the journal reads them.
"""


def journalLines(event: LogEvent) -> list[str]:
    """
    Render an event as journal lines: C{<N>[system] text}, without a
    timestamp (the system is the event's namespace, or C{-} for events of
    Twisted's legacy log, as twistd writes it), each line of a multi-line event (a traceback) on its own,
    every control character escaped.
    """
    priority = PRIORITIES.get(event.get("log_level", LogLevel.info), 6)
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}"
    system = event.get("log_system") or event.get("log_namespace", "-")
    prefix = f"<{priority}>[{system}] "
    # Split on LF only: a CR, or any other separator, is escaped within its line.
    return [prefix + terminalSafe(line) + "\n" for line in text.rstrip("\n").split("\n")]


@implementer(ILogObserver)
class JournalObserver:
    """
    Writes events to a stream the journal reads, as L{journalLines}.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: LogEvent) -> None:
        self.stream.write("".join(journalLines(event)))
        self.stream.flush()


def isJournal(stream: IO[Any], environ: Mapping[str, str]) -> bool:
    """
    @return: whether C{stream} is connected to the journal: C{$JOURNAL_STREAM}
        names its device and inode (a stream redirected elsewhere is not).
    """
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def observer(stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> ILogObserver:
    """
    The log observer factory for C{twistd --logger=avatard.logs.observer}.

    @return: a L{JournalObserver} when standard output is the journal, a
        timestamped text observer of standard output otherwise.
    """
    stream = sys.stdout if stream is None else stream
    if isJournal(stream, os.environ if environ is None else environ):
        return JournalObserver(stream)
    return textFileLogObserver(stream)


def mainLogFiles(observers: Iterable[object] | None = None) -> list[BaseLogFile]:
    """
    Find the log files twistd writes to (C{--logfile}).

    twistd keeps its log file to itself: it is found as the file of a
    L{FileLogObserver} among the global log publisher's observers.

    @return: those files; none when twistd logs to standard output.
    """
    if observers is None:
        observers = getattr(globalLogPublisher, "_observers", ())
    return [
        observer._outFile
        for observer in observers
        if isinstance(observer, FileLogObserver) and isinstance(observer._outFile, BaseLogFile)
    ]


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
    _log = Logger()

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
            self._log.error("SIGHUP: cannot reopen {problems}", problems=terminalSafe("; ".join(problems)))
        else:
            self._log.info("SIGHUP: log files reopened")
