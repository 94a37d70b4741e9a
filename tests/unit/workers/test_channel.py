"""
L{avatard.workers.channel}: the messages between a worker and the twistd
process, and the log events they carry.
"""

from __future__ import annotations

import os

from twisted.logger import LogLevel, formatEvent, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.ops.systemd import INotifier
from avatard.workers.channel import (
    Lines,
    LogToParent,
    ParentChannel,
    ParentNotifier,
    decode,
    encode,
    logRecord,
    workerEvent,
)


class MessageTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        A message is one line, whatever its value holds, and reads back.
        """
        line = encode("log", {"text": "two\nlines"})
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(decode(line[:-1]), ("log", {"text": "two\nlines"}))

    def test_linesAcrossReads(self) -> None:
        """
        Lines split across reads are given whole; what is left at the end
        is given by C{flush}.
        """
        lines: list[bytes] = []
        reader = Lines(lines.append)
        reader.feed(b"one\ntw")
        reader.feed(b"o\nthr")
        self.assertEqual(lines, [b"one", b"two"])
        reader.flush()
        self.assertEqual(lines, [b"one", b"two", b"thr"])


class LogTests(SynchronousTestCase):
    def test_workerEventNamesItsWorker(self) -> None:
        """
        A worker's event, in the twistd process's log, keeps its namespace,
        level and time, and its text follows C{worker K:}.
        """
        record = logRecord(
            {
                "log_format": "serving {where}",
                "where": "127.0.0.1:8787",
                "log_level": LogLevel.warn,
                "log_namespace": "avatard.service.AvatardService",
                "log_time": 1000.0,
            }
        )
        event = workerEvent(2, record)
        self.assertEqual(formatEvent(event), "worker 2: serving 127.0.0.1:8787")
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["log_time"], 1000.0)
        self.assertIn(
            "[avatard.service.AvatardService#warn] worker 2: serving", formatEventAsClassicLogText(event)
        )

    def test_failuresKeepTheirTraceback(self) -> None:
        """
        A logged failure's traceback goes with its text.
        """
        try:
            raise ZeroDivisionError("by zero")
        except ZeroDivisionError:
            failure = Failure()
        record = logRecord({"log_format": "oops", "log_failure": failure, "log_level": LogLevel.critical})
        self.assertIn("Traceback", record["text"])
        self.assertIn("ZeroDivisionError", record["text"])
        self.assertEqual(workerEvent(1, record)["log_level"], LogLevel.critical)

    def test_legacySystemKept(self) -> None:
        """
        The system of an event from Twisted's legacy log is kept.
        """
        event = workerEvent(1, {"text": "x", "level": "info", "namespace": "n", "system": "-"})
        self.assertEqual(event["log_system"], "-")


class ParentChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.read, write = os.pipe()
        self.addCleanup(os.close, self.read)
        self.channel = ParentChannel(write)
        self.addCleanup(os.close, write)

    def received(self) -> tuple[str, object]:
        data = os.read(self.read, 65536)
        self.assertTrue(data.endswith(b"\n"))
        return decode(data[:-1])

    def test_notifierSendsReadiness(self) -> None:
        """
        A worker's readiness goes to the twistd process as a C{notify}
        message.
        """
        notifier = ParentNotifier(self.channel)
        self.assertTrue(verifyObject(INotifier, notifier))
        notifier.notify({"READY": "1", "STATUS": "Serving"})
        self.assertEqual(self.received(), ("notify", {"READY": "1", "STATUS": "Serving"}))

    def test_logEventsSent(self) -> None:
        """
        Every log event goes to the twistd process as a C{log} message.
        """
        LogToParent(self.channel)({"log_format": "hello {who}", "who": "you", "log_namespace": "x"})
        kind, value = self.received()
        self.assertEqual(kind, "log")
        assert isinstance(value, dict)
        self.assertEqual((value["text"], value["namespace"]), ("hello you", "x"))

    def test_aGoneParentIsNoError(self) -> None:
        """
        Once the twistd process is gone, messages are dropped.
        """
        os.close(self.read)
        self.read = os.open(os.devnull, os.O_RDONLY)
        self.channel.send("log", {})
        self.assertTrue(self.channel.broken)
