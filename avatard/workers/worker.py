"""
C{python -m avatard.workers.worker ARGUMENTS}: one worker of a group,
started by the twistd process (L{avatard.workers.process}) with the
daemon's own arguments.

It runs the service tree a single process runs
(L{avatard.tap.serviceTree}), in the role the environment gives it
(L{WORKER_VARIABLE}, L{SOCKETS_VARIABLE}): on sockets it inherited, its
log and readiness sent to the twistd process.  SIGTERM stops it as it
stops a single process; it then exits with status 0, which tells the twistd
process it stopped, not died.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def main(argv: list[str]) -> int:
    # A SIGHUP before the service that handles it starts must not end the
    # worker; ^C at a terminal reaches the whole group, whose twistd
    # process stops the workers itself.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A SIGTERM while the worker starts stops it once it runs, as one later
    # would: it stops, it does not die.
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(True))
    if "LISTEN_FDS" in os.environ:
        # The sockets systemd passed are at the descriptors it passed them
        # as: Twisted's systemd: parser, which reads this when it is first
        # imported, finds them as in the twistd process.
        os.environ["LISTEN_PID"] = str(os.getpid())

    from twisted.internet import reactor as globalReactor
    from twisted.logger import Logger, globalLogBeginner

    from avatard.tap import Options, serviceTree
    from avatard.workers.channel import LogToParent, ParentChannel, ParentCommands
    from avatard.workers.process import SOCKETS_VARIABLE, WORKER_VARIABLE
    from avatard.workers.role import WorkerRole

    reactor: Any = globalReactor
    channel = ParentChannel()
    globalLogBeginner.beginLoggingTo([LogToParent(channel)], redirectStandardIO=False)
    log = Logger(namespace="avatard.workers.Worker")
    index, _, count = os.environ[WORKER_VARIABLE].partition("/")
    sockets = [int(number) for number in os.environ[SOCKETS_VARIABLE].split(",") if number]
    role = WorkerRole(int(index), int(count), sockets, channel)
    options = Options()
    options.parseOptions(argv)
    try:
        tree = serviceTree(options, reactor, role)
        tree.privilegedStartService()
        tree.startService()
    except SystemExit as e:
        log.error("{problem}", problem=str(e))
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", tree.stopService)
    stopped: list[bool] = []

    def stop() -> None:
        if not stopped:
            stopped.append(True)
            reactor.stop()

    def command(line: bytes) -> None:
        if line.strip() == b"figures":
            from avatard.workers.figures import snapshotOf

            channel.send("figures", snapshotOf(role.registry))

    signal.signal(signal.SIGTERM, lambda number, frame: reactor.callFromThread(stop))
    if stopping:
        reactor.callWhenRunning(stop)
    reactor.addReader(ParentCommands(reactor, command, stop))
    channel.send("started", {})
    reactor.run(installSignalHandlers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
