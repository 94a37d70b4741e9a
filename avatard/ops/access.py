"""
The access log (C{--access-log}): one line per request.

A line reads::

    2026-11-27T04:41:03.125Z 192.0.2.1:40000 WHO ok 0.042ms "WHO yoen"

the time the reply was known (UTC), the client, the command (C{-} when the
line has none the protocol knows), the result (C{ok} or the code of the
C{ERR} reply), the time taken to answer, and the request line as received,
quoted.  In the request, bytes that are not UTF-8 are written C{\\xNN},
control and format characters C{\\xNN} or C{\\uNNNN}, and C{"} and C{\\}
are escaped with a backslash: nothing a client sends can split, forge or
colour a line.

Lines are gathered in memory and written together at the end of the
reactor turn in which they were made: one write per turn, whatever the
number of requests.
"""

from __future__ import annotations

import time
from typing import IO

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from avatard.episodes import Episode
from avatard.request.observe import IRequestObserver
from avatard.text import quoteBytes

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.access.AccessLog")

HELD_LINES = 10_000
"""
Lines kept in memory, at most, while the access log file cannot be
written (its reopening failed); older ones are dropped.
"""

REMEMBERED = 1024
"""
Request lines whose quoted form is kept,
so that repeated requests (the common case) are not rendered again; the
memory is emptied when full.
"""


def formatRequest(peer: str, command: str, result: str, line: bytes, seconds: float) -> str:
    """
    @return: the access log's fields for one request, after the time.
    """
    return f"{peer} {command} {result} {seconds * 1000:.3f}ms {quoteBytes(line)}"


@implementer(IRequestObserver)
class AccessLog:
    """
    Writes one line per request to a file, opened in append mode.

    A file that cannot be written (a full disk) is reported once, until it
    can be again; meanwhile the last L{HELD_LINES} lines wait.

    @ivar path: the file's path.
    """

    def __init__(self, path: str, clock: IReactorTime) -> None:
        self.path = path
        self.clock = clock
        self._file: IO[bytes] | None = self._open()
        self._lines: list[str] = []
        self._flush: IDelayedCall | None = None
        self._second = -1
        self._stamp = ""
        self._quoted: dict[bytes, str] = {}
        self._failures = Episode()

    def _open(self) -> IO[bytes]:
        # Unbuffered: one write per turn goes straight to the file, and a
        # failed write leaves nothing behind in a buffer to be written twice.
        return open(self.path, "ab", buffering=0)

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        quoted = self._quoted.get(line)
        if quoted is None:
            if len(self._quoted) >= REMEMBERED:
                self._quoted.clear()
            quoted = self._quoted[line] = quoteBytes(line)
        self._lines.append(f"{self._timestamp()} {peer} {command} {result} {seconds * 1000:.3f}ms {quoted}\n")
        if self._flush is None:
            self._flush = self.clock.callLater(0, self.flush)

    def _timestamp(self) -> str:
        now = self.clock.seconds()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def flush(self) -> None:
        """
        Write the lines gathered so far.
        """
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        if self._file is None:
            del self._lines[:-HELD_LINES]
        elif self._lines:
            try:
                self._file.write("".join(self._lines).encode("utf-8"))
            except OSError as e:
                # A full disk, say: one line per episode, and the lines wait.
                if self._failures.failure():
                    _log.error(
                        "Cannot write the access log {path}: {reason}; keeping the last {held} lines",
                        path=self.path,
                        reason=e.strerror,
                        held=HELD_LINES,
                    )
                del self._lines[:-HELD_LINES]
                return
            self._lines = []
            if self._failures.success() is not None:
                _log.info("The access log {path} is written again.", path=self.path)

    def reopen(self) -> None:
        """
        Close the file and open its path again (after a log rotation tool
        renamed it).

        @raise OSError: when the path cannot be opened; lines are kept
            until a later reopen succeeds.
        """
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._file = self._open()
        self.flush()

    def close(self) -> None:
        """
        Write what is left and close the file.
        """
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


_accessLog = Logger(namespace="avatard.access")


@implementer(IRequestObserver)
class MainLogAccessLog:
    """
    Writes one event per request to the daemon's own log (C{--access-log -}):
    the same fields as L{AccessLog}, timed by the log itself.
    """

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        _accessLog.info("{request}", request=formatRequest(peer, command, result, line, seconds))


class AccessLogService(Service):
    """
    Closes an L{AccessLog} when the daemon stops, once every request has
    been answered.
    """

    name = "access-log"

    def __init__(self, log: AccessLog) -> None:
        self.log = log

    def stopService(self) -> None:
        super().stopService()
        self.log.close()
