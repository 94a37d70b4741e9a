"""
Connection limits, and the open-file limit they follow.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from avatard.networks import Networks
from avatard.rates import Rate

FILE_RESERVE = 64
"""
Open files kept free, at the default connection limit, for the database,
the log, the listening socket and the interpreter's own.
"""


@dataclass(frozen=True)
class Limits:
    """
    What one avatard process allows its clients.

    @ivar maxLine: the longest request, in bytes without its line ending.
    @ivar idleTimeout: seconds a connection may send nothing (while it is
        owed no reply) before it is closed.
    @ivar maxConnections: connections open at once; more are refused with
        C{ERR busy}.
    @ivar maxPerAddress: connections open at once from one IP address;
        C{0} means no limit.
    @ivar allow: the networks connections are admitted from (C{--allow});
        L{None} admits every address.  Clients of UNIX sockets are always
        admitted.
    @ivar rate: the budget of requests of each client (C{--rate-limit}),
        or L{None} for none.  Clients of UNIX sockets have none.
    @ivar maxPending: replies a connection may be owed before the server
        stops reading its requests; reading resumes at half of that.
    @ivar linesPerTurn: requests a connection may always answer in one
        turn of the reactor before it lets the other connections run until
        the next turn.
    @ivar spareLinesPerTurn: requests beyond their shares that the
        connections of one turn may answer between them, first come, first
        served: a single client pipelining deep is answered a few thousand
        requests a turn (a turn costs about as much as 30 requests), while
        with 200 clients flooding at once, each gets about its share, and a
        well-behaved client waits for at most about 200 shares and the
        spare to be answered (tens of milliseconds) rather than for all
        they sent in a read.  See L{avatard.protocol.turns}.
    """

    maxLine: int = 1024
    idleTimeout: float = 60.0
    maxConnections: int = 1024
    maxPerAddress: int = 0
    allow: Networks | None = None
    rate: Rate | None = None
    maxPending: int = 1000
    linesPerTurn: int = 100
    spareLinesPerTurn: int = 2000


def raiseFileLimit() -> int:
    """
    Raise this process's soft limit on open files to its hard limit.

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        # An unlimited hard limit cannot be a soft limit everywhere; settle
        # for a large finite one.
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def defaultMaxConnections() -> int:
    """
    The default cap on connections: the open-file limit (raised to its hard
    limit first) less L{FILE_RESERVE}.
    """
    return max(raiseFileLimit() - FILE_RESERVE, 1)
