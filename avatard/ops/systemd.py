"""
The systemd service manager's readiness protocol (C{Type=notify}).

systemd passes a datagram socket's address in C{$NOTIFY_SOCKET}; the daemon
sends it newline-separated C{KEY=value} assignments: C{READY=1} once it
serves, C{STOPPING=1} when it begins to stop, and C{STATUS=} lines that
C{systemctl status} shows.  The protocol is a single C{sendto}, so it is
spoken here directly rather than through a library.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from avatard.episodes import Episode
from avatard.text import terminalSafe

# Logged under the names operators' log filters know.
_notifierLog = Logger(namespace="avatard.systemd.SystemdNotifier")
_readinessLog = Logger(namespace="avatard.systemd.Readiness")

PROBE_LOGIN = "avatard-readiness-probe"
"""
The login looked up to check that the database answers: whether it is
found does not matter, only that the read succeeds.
"""

PROBE_RETRY = 1.0
"""
Seconds between attempts at the readiness probe while the database does not
answer.
"""

STATUS_INTERVAL = 10.0
"""
Seconds between updates of the C{STATUS=} line while serving.
"""


class INotifier(Interface):
    """
    Tells the service manager about the daemon's state.
    """

    def notify(assignments: Mapping[str, str]) -> None:
        """
        Send C{KEY=value} assignments, such as C{{"READY": "1"}}, in one
        message.  Never raises: a manager that cannot be told is logged.
        """


class NotifyError(Exception):
    """
    C{$NOTIFY_SOCKET} holds something that is not a socket address.
    """


def notifyAddress(value: str) -> str:
    """
    @param value: the value of C{$NOTIFY_SOCKET}: a path, or an abstract
        socket name written with a leading C{@}.
    @return: the address to send to (abstract names start with a NUL).
    @raise NotifyError: when C{value} is neither.
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise NotifyError(f"NOTIFY_SOCKET={value!r} is neither an absolute path nor an @abstract name")


@implementer(INotifier)
class SystemdNotifier:
    """
    Sends notifications to a UNIX datagram socket, as C{sd_notify(3)} does.

    @ivar address: the socket's address, as L{notifyAddress} returns it.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._failures = Episode()

    @classmethod
    def fromEnvironment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier | None:
        """
        @return: a notifier for C{$NOTIFY_SOCKET}, or L{None} when it is not
            set (the daemon does not run under systemd's C{Type=notify}).
        @raise NotifyError: when it is set to something unusable.
        """
        value = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
        if not value:
            return None
        return cls(notifyAddress(value))

    def notify(self, assignments: Mapping[str, str]) -> None:
        message = "\n".join(f"{key}={value}" for key, value in assignments.items()).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.setblocking(False)
                s.sendto(message, self.address)
        except OSError as e:
            # Once per episode: a manager that went away is not worth a line per status.
            if self._failures.failure():
                _notifierLog.warn("Cannot notify the service manager: {error}", error=terminalSafe(str(e)))
            return
        self._failures.success()


class Readiness(Service):
    """
    Tells the service manager when the daemon serves, what it is doing,
    and when it stops: a service of the daemon's tree.

    Once started, it waits for the listener (C{listening}); C{READY=1} is
    sent only after C{probe} (a real read of the database) has also
    succeeded, tried again every L{PROBE_RETRY} seconds until it does (its
    failures reported once, and its success after them).  While serving,
    C{STATUS=} is refreshed every L{STATUS_INTERVAL} seconds from
    C{status}.  Stopping it (the first thing the daemon does when it stops)
    sends C{STOPPING=1} and stops probing and updating.

    @param probe: reads the database; its L{Deferred} fails if it cannot.
    @param status: a one-line summary of the daemon's activity.
    @param listening: a L{Deferred} that fires once every listener is up,
        with where they listen.
    @ivar ready: whether C{READY=1} was sent.
    """

    name = "readiness"

    def __init__(
        self,
        notifier: INotifier,
        probe: Callable[[], Deferred[object]],
        clock: IReactorTime,
        status: Callable[[], str],
        listening: Callable[[], Deferred[str]],
    ) -> None:
        self.notifier = notifier
        self.probe = probe
        self.clock = clock
        self.status = status
        self.listening = listening
        self.ready = False
        self._where = ""
        self._stopped = False
        self._retry: IDelayedCall | None = None
        self._probing: Deferred[object] | None = None
        self._failures = Episode()
        self._updates = LoopingCall(self._update)
        self._updates.clock = clock

    def startService(self) -> None:
        super().startService()
        self.listening().addCallback(self._listened)

    def _listened(self, where: str) -> None:
        if not self._stopped:
            self.serving(where)

    def stopService(self) -> None:
        super().stopService()
        self.stopping()

    def serving(self, where: str) -> None:
        """
        The listeners are up at C{where}: check the database, then tell the
        manager the daemon is ready.
        """
        self._where = where
        self.notifier.notify({"STATUS": f"Checking the database before serving on {where}"})
        self._probe()

    def _probe(self) -> None:
        self._retry = None
        if self._stopped:
            return
        self._probing = self.probe()
        self._probing.addCallbacks(self._answered, self._notAnswered)

    def _answered(self, _: object) -> None:
        self._probing = None
        if self._stopped:
            return
        if self._failures.success() is not None:
            _readinessLog.info("The database answers: ready.")
        self.ready = True
        self.notifier.notify({"READY": "1", "STATUS": self._statusLine()})
        self._updates.start(STATUS_INTERVAL, now=False)

    def _notAnswered(self, failure: Failure) -> None:
        self._probing = None
        if self._stopped:
            return
        cause = terminalSafe(failure.getErrorMessage() or repr(failure.value))
        if self._failures.failure():
            _readinessLog.warn(
                "Not ready: the database does not answer ({cause}); retrying every {retry:g} s",
                cause=cause,
                retry=PROBE_RETRY,
            )
        self.notifier.notify({"STATUS": f"Waiting for the database to answer: {cause}"})
        self._retry = self.clock.callLater(PROBE_RETRY, self._probe)

    def _statusLine(self) -> str:
        return terminalSafe(f"Serving on {self._where}: {self.status()}")

    def _update(self) -> None:
        self.notifier.notify({"STATUS": self._statusLine()})

    def stopping(self) -> None:
        """
        The daemon begins to stop: say so, and stop probing and updating.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._probing is not None:
            self._probing.cancel()
        if self._updates.running:
            self._updates.stop()
        self.notifier.notify(
            {"STOPPING": "1", "STATUS": "Stopping: no new connections; answering what was read"}
        )
