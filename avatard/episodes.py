"""
Failures reported once per episode: the one policy every part of the daemon
follows when something fails again and again (a database down, a full
disk, a service manager gone, connections refused).

A log line per failure would flood the log exactly when an operator needs
it; none would hide the failure.  So the first failure of an episode is
reported, those after it are counted, and the end of the episode (the
first success) is reported once, with that count, when its start was.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime


class Episode:
    """
    The state of one kind of failure: whether it is going on, and whether
    and when it was reported.

    Callers log; this decides when.  A failure returns whether to report it
    (L{failure}); a success returns the count to report the end with, or
    L{None} when there is nothing to report (L{success}).

    With a C{quiet} time, an episode that starts within C{quiet} seconds of
    the last report is only counted: it is reported by its first failure
    after that time, if it is still going on.  A database that flaps then
    writes a few lines a minute, not one per flap.

    A failure with another C{cause} than the one reported starts a report
    of its own, for failures whose cause is worth knowing when it changes.

    @ivar failing: whether an episode is going on.
    @ivar failures: the failures counted since the end of the last
        reported episode: an episode never reported (it started and ended
        within the quiet time) adds its failures to the next one's.
    """

    failing = False

    def __init__(self, clock: IReactorTime | None = None, quiet: float = 0.0) -> None:
        self.clock = clock
        self.quiet = quiet
        self.failures = 0
        self._reported = False
        self._cause: object = None
        self._lastReport: float | None = None

    def failure(self, cause: object = None) -> bool:
        """
        Count one failure.

        @return: whether to report it: it starts an episode (or its cause
            differs from the one reported), and the quiet time since the
            last report is over.
        """
        if not self.failing:
            self.failing = True
            self._reported = False
        self.failures += 1
        if self._reported and cause == self._cause:
            return False
        if self.quiet and self.clock is not None:
            now = self.clock.seconds()
            if self._lastReport is not None and now - self._lastReport < self.quiet:
                return False
            self._lastReport = now
        self._reported = True
        self._cause = cause
        return True

    def success(self) -> int | None:
        """
        End the episode going on, if any.

        @return: how many failures it counted, when its start was reported
            (so its end is to be reported too); L{None} otherwise.
        """
        if not self.failing:
            return None
        self.failing = False
        if not self._reported:
            return None
        failures, self.failures = self.failures, 0
        self._reported = False
        self._cause = None
        return failures
