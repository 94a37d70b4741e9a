"""
L{mainLogFiles}: the log files twistd writes to, found where it keeps them.
"""

from __future__ import annotations

import io
import os

from twisted.logger import FileLogObserver, formatEvent, globalLogPublisher
from twisted.python.logfile import LogFile
from twisted.trial.unittest import SynchronousTestCase

from avatard.ops.twistdlog import mainLogFiles


class MainLogFilesTests(SynchronousTestCase):
    """
    L{mainLogFiles}: the log files twistd writes to.
    """

    def setUp(self) -> None:
        self.logFile = LogFile.fromFullPath(os.path.abspath(self.mktemp()))
        self.addCleanup(self.logFile.close)

    def test_mainLogFilesFoundAmongObservers(self) -> None:
        """
        twistd's log file is the file of a L{FileLogObserver}; other
        observers and streams are ignored.
        """
        observers = [
            FileLogObserver(self.logFile, formatEvent),
            FileLogObserver(io.StringIO(), formatEvent),
            print,
        ]
        self.assertEqual(mainLogFiles(observers), [self.logFile])

    def test_twistdsLogFileIsFoundWhereTwistedKeepsIt(self) -> None:
        """
        A file observer on the global log publisher, as twistd adds one for
        C{--logfile}, is found where Twisted keeps it today; if Twisted
        moved it, this fails (and so does the end-to-end SIGHUP test).
        """
        observer = FileLogObserver(self.logFile, formatEvent)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.assertIn(self.logFile, mainLogFiles())
