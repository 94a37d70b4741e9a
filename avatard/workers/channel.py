"""
What a worker and the twistd process say to each other, over the worker's
standard input and output: one message a line, a word and a JSON value.

From the worker (its standard output):

 - C{log {...}}: one log event, already written as text (L{logRecord});
 - C{notify {...}}: what a single process would tell systemd
   (C{READY=1}, C{STATUS=...}, C{STOPPING=1});
 - C{started {}}: it listens and handles its signals;
 - C{figures [...]}: its metrics, when asked (L{avatard.workers.figures}).

From the twistd process (the worker's standard input): C{figures}, to ask
for them.  The end of its standard input tells a worker the twistd process
is gone: it stops.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import ILogObserver, InvalidLogLevelError, LogEvent, LogLevel, formatEvent
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.ops.systemd import INotifier

MAX_MESSAGE = 16 * 1024 * 1024
"""
The longest message line read, in bytes: a worker's figures are a few
kilobytes.
"""


def encode(kind: str, value: object) -> bytes:
    """
    @return: one message line.
    """
    return kind.encode("ascii") + b" " + json.dumps(value, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes) -> tuple[str, Any]:
    """
    @return: a message line's word and value.
    @raise ValueError: when C{line} is not a message.
    """
    kind, _, value = line.partition(b" ")
    return kind.decode("ascii"), json.loads(value) if value else None


class Lines:
    """
    Splits a stream into lines, each given to C{received} without its line
    feed; a line longer than L{MAX_MESSAGE} is given in pieces.
    """

    def __init__(self, received: Callable[[bytes], None]) -> None:
        self.received = received
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        *lines, self._buffer = buffer.split(b"\n")
        for line in lines:
            self.received(line)
        if len(self._buffer) > MAX_MESSAGE:
            self.flush()

    def flush(self) -> None:
        """
        Give what is left of an unfinished line.
        """
        if self._buffer:
            rest, self._buffer = self._buffer, b""
            self.received(rest)


def logRecord(event: LogEvent) -> dict[str, Any]:
    """
    @return: a log event as a worker sends it: its text (a failure's
        traceback after it), level, namespace, system and time.
    """
    text = formatEvent(event)
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        text = f"{text}\n{failure.getTraceback()}".rstrip("\n")
    level = event.get("log_level", LogLevel.info)
    return {
        "text": text,
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", "-"),
        "system": event.get("log_system"),
        "time": event.get("log_time"),
    }


def workerEvent(index: int, record: Mapping[str, Any]) -> LogEvent:
    """
    @return: the log event a worker's record stands for, in the twistd
        process's log: its namespace and level kept (which log filters
        know), its text after C{worker K:}.
    """
    try:
        level = LogLevel.levelWithName(str(record.get("level")))
    except InvalidLogLevelError:
        level = LogLevel.info
    event: dict[str, Any] = {
        "log_format": "worker {log_worker}: {log_text}",
        "log_worker": index,
        "log_text": str(record.get("text", "")),
        "log_level": level,
        "log_namespace": str(record.get("namespace") or "-"),
    }
    if isinstance(record.get("time"), (int, float)):
        event["log_time"] = record["time"]
    else:
        event["log_time"] = time.time()
    if record.get("system"):
        event["log_system"] = str(record["system"])
    return event


class ParentChannel:
    """
    A worker's end of its standard output: messages to the twistd process.

    Writes block, so that nothing is lost when the worker exits; any
    thread may send.
    """

    def __init__(self, fileDescriptor: int = 1) -> None:
        self.fileDescriptor = fileDescriptor
        self._lock = threading.Lock()
        self.broken = False

    def send(self, kind: str, value: object) -> None:
        """
        Send one message; one the twistd process can no longer read is
        dropped.
        """
        data = memoryview(encode(kind, value))
        with self._lock:
            while data and not self.broken:
                try:
                    data = data[os.write(self.fileDescriptor, data) :]
                except BrokenPipeError:
                    self.broken = True
                except InterruptedError:
                    continue


@implementer(INotifier)
class ParentNotifier:
    """
    A worker's readiness, told to the twistd process, which tells systemd
    for the group.
    """

    def __init__(self, channel: ParentChannel) -> None:
        self.channel = channel

    def notify(self, assignments: Mapping[str, str]) -> None:
        self.channel.send("notify", dict(assignments))


@implementer(ILogObserver)
class LogToParent:
    """
    A worker's log observer: every event goes to the twistd process, which
    writes it in the one log of the group.
    """

    def __init__(self, channel: ParentChannel) -> None:
        self.channel = channel

    def __call__(self, event: LogEvent) -> None:
        self.channel.send("log", logRecord(event))


@implementer(IReadDescriptor)
class ParentCommands:
    """
    A worker's end of its standard input: each line (a command) is given
    to C{received}; its end (the twistd process is gone) calls C{lost}.
    """

    def __init__(
        self,
        reactor: Any,
        received: Callable[[bytes], None],
        lost: Callable[[], None],
        fileDescriptor: int = 0,
    ) -> None:
        self.reactor = reactor
        self.fileDescriptor = fileDescriptor
        self.lines = Lines(received)
        self.lost = lost

    def fileno(self) -> int:
        return self.fileDescriptor

    def logPrefix(self) -> str:
        return "avatard-parent"

    def doRead(self) -> Failure | None:
        try:
            data = os.read(self.fileDescriptor, 65536)
        except BlockingIOError:
            return None
        except OSError:
            return Failure(ConnectionDone())
        if not data:
            return Failure(ConnectionDone())
        self.lines.feed(data)
        return None

    def connectionLost(self, reason: Failure) -> None:
        self.reactor.removeReader(self)
        self.lost()
