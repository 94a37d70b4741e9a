"""
L{avatard.ops.journal}: the daemon's own log as the journal reads it.
"""

from __future__ import annotations

import io
import os
from typing import Any

from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from avatard.ops.journal import isJournal, journalLines, observer


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
        observer(self.stream, self.journal)(event("serving"))
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
            stream = io.StringIO()
            observer(stream, environ)(event("serving"))
            [line] = stream.getvalue().splitlines(keepends=True)
            self.assertTrue(line.startswith("2026-09-"), line)
            self.assertTrue(line.endswith(" [avatard.service#info] serving\n"), line)
        self.assertFalse(isJournal(io.StringIO(), self.journal))
