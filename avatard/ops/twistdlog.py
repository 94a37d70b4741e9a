"""
The log files twistd writes to: found where twistd keeps them, because it
offers no other way.

A limitation of Twisted (26.10): twistd opens its log file (C{--logfile})
itself and gives nobody a handle on it, so the daemon, which must reopen it
on C{SIGHUP} (log rotation tools rename it, and the shipped unit's
C{ExecReload} sends SIGHUP), finds it among the global log publisher's
observers (their private C{_observers}), as the file (the private
C{_outFile}) of a L{FileLogObserver}.  This module is the only place that
reads them: a unit test fails if they move, and so does the end-to-end test
of SIGHUP on a real twistd.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.logger import FileLogObserver, globalLogPublisher
from twisted.python.logfile import BaseLogFile


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
