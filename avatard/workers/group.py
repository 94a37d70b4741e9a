"""
The twistd process of a group (C{--workers N}, N > 1): it checks the
database once, binds every listening socket once, supervises the workers
that serve them, and is what systemd and operators talk to.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger
from twisted.python.failure import Failure

from avatard import __version__
from avatard.addresses import describeAddress
from avatard.interfaces import IDatabase
from avatard.ops.hangup import ReopenOnHangup
from avatard.ops.systemd import Readiness
from avatard.ops.wiring import systemdNotifier
from avatard.service.descriptions import listenOn
from avatard.workers.process import WorkerSpawner
from avatard.workers.role import shareLimits
from avatard.workers.sockets import BoundSocket, Listener, bindAll
from avatard.workers.supervisor import STOP_GRACE, IWorker, Spawner, Supervisor

if TYPE_CHECKING:
    from avatard.tap import Options

# Logged under the name operators' log filters know.
_log = Logger(namespace="avatard.service.AvatardService")


class GroupService(MultiService):
    """
    The twistd process of a group: its listening sockets, the supervisor
    of its workers, and the helpers that speak for the group (readiness,
    SIGHUP, C{/metrics}).

    Its sockets are bound when it starts (privileged), before any worker;
    the twistd process never accepts on them.  Stopping is ordered:

     1. tell the service manager C{STOPPING=1} (C{announcer});
     2. stop every worker (each stops listening and answers what it has
        read, within C{--shutdown-timeout}), and close the twistd
        process's own copies of the sockets;
     3. once every worker has ended, stop the helpers (C{/metrics} last
        answers then).
    """

    def __init__(
        self,
        reactor: Any,
        listeners: Sequence[Listener],
        arguments: Sequence[str],
        count: int,
        databaseDescription: str,
        shutdownTimeout: float,
        details: str = "",
        helpers: Sequence[IService] = (),
        spawn: Spawner | None = None,
    ) -> None:
        """
        @param spawn: starts a worker; by default a real process
            (L{WorkerSpawner}) on the group's sockets.
        """
        super().__init__()
        self.reactor = reactor
        self.listeners = list(listeners)
        self.arguments = list(arguments)
        self.count = count
        self.databaseDescription = databaseDescription
        self.details = details
        self.sockets: list[BoundSocket] = []
        self.started = 0.0
        self.supervisor = Supervisor(
            self._spawn if spawn is None else spawn,
            count,
            reactor,
            shutdownTimeout + STOP_GRACE,
            self._stopGroup,
        )
        self.supervisor.setServiceParent(self)
        self.announcer: Readiness | None = None
        notifier = systemdNotifier()
        if notifier is not None:
            self.announcer = Readiness(
                notifier, self.supervisor.whenAllReady, reactor, self.status, lambda: succeed(self.where())
            )
            self.announcer.setServiceParent(self)
        self.helpers = [ReopenOnHangup(reactor, [self.supervisor.hangup]), *helpers]
        for helper in self.helpers:
            helper.setServiceParent(self)

    def _spawn(self, index: int, supervisor: Supervisor) -> IWorker:
        # Spawned once the sockets are bound (privilegedStartService).
        return WorkerSpawner(self.reactor, self.arguments, self.sockets, self.count)(index, supervisor)

    def where(self) -> str:
        """
        @return: where the group listens, as the start line says it.
        """
        return ", ".join(
            ("finger " if socket.listener.option == "--finger" else "")
            + describeAddress(socket.port.getHost())
            for socket in self.sockets
        )

    def status(self) -> str:
        """
        @return: the group's C{STATUS=}: how many workers run, and what each
            last said it does (its own line, less where it serves).
        """
        workers = self.supervisor.workers
        said = [
            f"worker {index}: {worker.status.split(': ', 1)[-1]}"
            for index, worker in sorted(workers.items())
            if worker.status.startswith("Serving on ")
        ]
        return "; ".join([f"{len(workers)} of {self.count} workers running", *said])

    def privilegedStartService(self) -> None:
        """
        Bind every listening socket; one that cannot be bound ends the
        process with one line.
        """
        self.sockets = bindAll(self.reactor, self.listeners, self.count)
        super().privilegedStartService()

    def startService(self) -> None:
        if not self.sockets:
            self.sockets = bindAll(self.reactor, self.listeners, self.count)
        self.started = self.reactor.seconds()
        _log.info(
            "avatard {version} serving {database} on {where} ({count} workers{details})",
            version=__version__,
            database=self.databaseDescription,
            where=self.where(),
            count=self.count,
            details=f"; each {self.details}" if self.details else "",
        )
        super().startService()

    def _stopGroup(self) -> None:
        """
        Stop the whole process: the supervisor decided the group must stop.

        The reactor is stopped after the calls already queued from signal
        handlers (those run first in a turn): when systemd signalled every
        process of the unit at once, the twistd process's own SIGTERM may
        have stopped it already.  Further SIGTERMs and SIGINTs are then
        ignored: the group is stopping.
        """
        if self.supervisor.failed:
            atexit.register(_exitFailed)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, _stoppingAlready)
        self.reactor.callLater(0, _stopReactor, self.reactor)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        _log.info("avatard stopping: every worker answers what it has read, then stops")
        stopping: Deferred[Any] = succeed(None)
        if self.announcer is not None and self.announcer.running:
            stopping = maybeDeferred(self.announcer.stopService)
        stopping.addCallback(lambda _: self._stopWorkers())
        stopping.addErrback(self._logStopFailure, "stop the workers")
        stopping.addCallback(lambda _: self._stopHelpers())
        stopping.addErrback(self._logStopFailure, "stop")
        stopping.addCallback(lambda _: self._stopped())
        return stopping

    def _stopWorkers(self) -> Deferred[Any]:
        stopped = self.supervisor.stopService()
        closing = [maybeDeferred(port.stopListening) for socket in self.sockets for port in socket.ports]
        return gatherResults([stopped, *closing], consumeErrors=True)

    def _stopHelpers(self) -> Deferred[list[object]]:
        return gatherResults(
            [maybeDeferred(helper.stopService) for helper in reversed(self.helpers) if helper.running],
            consumeErrors=True,
        )

    def _stopped(self) -> None:
        _log.info(
            "avatard stopped after {uptime:.1f} s, with {count} workers",
            uptime=self.reactor.seconds() - self.started,
            count=self.count,
        )

    def _logStopFailure(self, failure: Failure, what: str) -> None:
        _log.failure("Could not {what} cleanly", failure, what=what)


def _stoppingAlready(number: int, frame: FrameType | None) -> None:
    """
    A signal that would stop the process, which is stopping already.
    """


def _stopReactor(reactor: Any) -> None:
    with contextlib.suppress(ReactorNotRunning):
        reactor.stop()


def _exitFailed() -> None:
    """
    End the process with status 1: the group stopped because its workers
    kept dying (twistd itself would exit with 0).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def workerGroup(options: Options, reactor: Any) -> GroupService:
    """
    Build the twistd process of a group from C{options}: the database and
    the access log are checked, once, here, and every endpoint description
    when the group binds its sockets (L{GroupService.privilegedStartService});
    a problem ends the process with one line before any worker starts.
    """
    from avatard.tap import checkDatabase, describeSettings, limitsOf

    database: IDatabase = options["database"]
    checkDatabase(database, options["query-timeout"])
    listeners = [Listener("--port", description, True) for description in options["port"]]
    listeners += [Listener("--finger", description) for description in options["finger"]]
    accessLog = options["access-log"]
    if accessLog and accessLog != "-":
        try:
            with open(os.path.abspath(accessLog), "ab"):
                pass
        except OSError as e:
            raise SystemExit(f"avatard: --access-log {accessLog!r} cannot be opened: {e.strerror}") from None
    count = options["workers"]
    share = shareLimits(limitsOf(options), count, 1, options["max-connections"] is not None)
    cache = (
        f"cache {options['cache-size']} users"
        if options["cache-size"] and options["cache-ttl"]
        else "no cache"
    )
    group = GroupService(
        reactor,
        listeners,
        options.arguments,
        count,
        database.describe(),
        options["shutdown-timeout"],
        details=describeSettings(share, options["query-timeout"], cache),
    )
    metrics = options["metrics"]
    if metrics is not None:
        service = groupMetrics(reactor, group.supervisor, metrics)
        group.helpers.append(service)
        service.setServiceParent(group)
    return group


def groupMetrics(reactor: Any, supervisor: Supervisor, description: str) -> IService:
    """
    @return: the service of C{/metrics} for the group, on C{description}.
    """
    from avatard.ops.metrics import MetricsService
    from avatard.workers.figures import GroupCollector, GroupMetricsResource, gatherFrom, groupRegistry

    collector = GroupCollector()
    registry = groupRegistry(collector)
    resource = GroupMetricsResource(
        registry, collector, gatherFrom(lambda: supervisor.workers, reactor), reactor
    )
    return MetricsService(
        listenOn(reactor, "--metrics", description), registry, description, reactor, resource
    )
