"""
The daemon's own log: journal lines, and log files reopened on SIGHUP.
"""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import FileLogObserver, LogLevel, capturedLogs, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from avatard.ops.hangup import ReopenOnHangup
from avatard.ops.journal import JournalObserver, isJournal, journalLines, observer
from avatard.ops.twistdlog import mainLogFiles


def event(text: str, level: LogLevel = LogLevel.info, **fields: Any) -> dict[str, Any]:
    return {
        "log_format": text,
        "log_level": level,
        "log_namespace": "avatard.service",
        "log_time": 1_790_000_000.0,
        **fields,
    }


class JournalLineTests(SynchronousTestCase):
    """
    L{journalLines}: what the journal reads.
    """

    def test_priorityNamespaceNoTimestamp(self) -> None:
        """
        A priority prefix from the level, the namespace, the text; no time.
        """
        self.assertEqual(
            journalLines(event("serving {what}", what="x")), ["<6>[avatard.service] serving x\n"]
        )
        self.assertEqual(journalLines(event("down", LogLevel.error)), ["<3>[avatard.service] down\n"])
        self.assertEqual(journalLines(event("hm", LogLevel.warn)), ["<4>[avatard.service] hm\n"])
        legacy = event("(TCP Port 8787 Closed)", log_namespace="log_legacy", log_system="-")
        self.assertEqual(journalLines(legacy), ["<6>[-] (TCP Port 8787 Closed)\n"])

    def test_controlCharactersAreEscapedAndLinesSplit(self) -> None:
        """
        Each line of a multi-line event is a line of its own with the
        prefix; control characters within a line are escaped.
        """
        self.assertEqual(
            journalLines(event("a\x1b[2J\rb\nc")),
            ["<6>[avatard.service] a\\x1b[2J\\x0db\n", "<6>[avatard.service] c\n"],
        )

    def test_failureTracebackFollows(self) -> None:
        """
        A logged failure's traceback follows, line by line, at its level.
        """
        try:
            raise ValueError("boom")
        except ValueError:
            failure = Failure()
        lines = journalLines(event("it failed", LogLevel.critical, log_failure=failure))
        self.assertEqual(lines[0], "<2>[avatard.service] it failed\n")
        self.assertTrue(all(line.startswith("<2>[avatard.service] ") for line in lines))
        self.assertIn("ValueError: boom", "".join(lines))


class ObserverChoiceTests(SynchronousTestCase):
    """
    L{observer}: journal lines only when standard output is the journal.
    """

    def setUp(self) -> None:
        path = self.mktemp()
        self.stream = open(path, "w")  # noqa: SIM115
        self.addCleanup(self.stream.close)
        status = os.fstat(self.stream.fileno())
        self.journal = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}

    def test_journalStream(self) -> None:
        """
        C{JOURNAL_STREAM} naming the stream: journal lines, no timestamp.
        """
        self.assertTrue(isJournal(self.stream, self.journal))
        chosen = observer(self.stream, self.journal)
        self.assertIsInstance(chosen, JournalObserver)
        chosen(event("serving"))
        self.stream.flush()
        with open(self.stream.name) as f:
            self.assertEqual(f.read(), "<6>[avatard.service] serving\n")

    def test_otherStreams(self) -> None:
        """
        No C{JOURNAL_STREAM}, a malformed one, or one naming another file
        (output redirected elsewhere): timestamped text, as twistd writes.
        """
        for environ in ({}, {"JOURNAL_STREAM": "x"}, {"JOURNAL_STREAM": "1:2"}):
            self.assertFalse(isJournal(self.stream, environ))
            self.assertIsInstance(observer(self.stream, environ), FileLogObserver)
        self.assertFalse(isJournal(io.StringIO(), self.journal))


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
        A log that cannot be reopened is named in one error line.
        """

        def refuse() -> None:
            raise PermissionError(13, "Permission denied", "/var/log/avatard/access.log")

        service = ReopenOnHangup(self.reactor, [refuse], list)
        with capturedLogs() as events:
            service.reopen()
        [e] = events
        self.assertEqual(e["log_level"], LogLevel.error)
        self.assertEqual(
            formatEvent(e), "SIGHUP: cannot reopen /var/log/avatard/access.log: Permission denied"
        )

    def test_signalHandlerInstalledAndRestored(self) -> None:
        """
        Started, the service handles SIGHUP by handing the reopening to the
        reactor thread; stopped, it puts the previous handler back.
        """
        previous = signal.getsignal(signal.SIGHUP)
        service = ReopenOnHangup(self.reactor, [], list)
        service.startService()
        try:
            handler = signal.getsignal(signal.SIGHUP)
            assert callable(handler)
            handler(signal.SIGHUP, None)
            self.assertEqual(self.reactor.calls, [service.reopen])
        finally:
            service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
