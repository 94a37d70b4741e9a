"""
The daemon's own log under systemd: lines that read well in the journal.

Under systemd, run C{twistd --logger=avatard.logs.observer ...}: when
standard output is the journal (systemd sets C{$JOURNAL_STREAM} to its
device and inode), each line goes out without a timestamp (the journal
adds its own) and with a C{<N>} priority prefix the journal reads as the
line's level; otherwise lines are written with timestamps, as twistd
writes them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO, Any

from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    textFileLogObserver,
)
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
