"""
Idle timeouts for every connection of a server, on one timer.
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

SLOTS = 100
"""
Slots per timeout: a connection falls due at most C{timeout / SLOTS}
seconds (and at most a second) after its deadline.
"""


class Sleeper(Protocol):
    """
    What L{IdleTimer} watches.
    """

    def idleTimerFired(self) -> None:
        """
        The deadline this was watched with has passed.
        """


class IdleTimer:
    """
    Calls each watched connection's C{idleTimerFired} once its deadline has
    passed, with one delayed call for all of them.

    A delayed call per connection costs more than the rest of a short
    connection's life: it is scheduled and cancelled on the reactor's heap
    of timed calls.  Here connections are kept in slots, one per
    C{granularity} seconds of deadline, and only the earliest slot has a
    delayed call; watching and forgetting a connection is a set insertion
    and removal.  A slot is kept until it falls due, even once emptied, so
    that connections coming and going at a high rate share it.  A
    connection is told at most C{granularity} late.  When nothing is
    watched, no slot and no delayed call is left.

    @ivar granularity: seconds of deadline that share one slot:
        C{timeout / SLOTS}, at most a second.
    """

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self.clock = clock
        self.granularity = min(1.0, timeout / SLOTS) if timeout > 0 else 1.0
        self._slots: dict[int, set[Sleeper]] = {}
        self._slotOf: dict[Sleeper, int] = {}
        # Slot numbers, some of them perhaps emptied since.
        self._due: list[int] = []
        self._call: IDelayedCall | None = None
        self._callSlot = 0

    def __len__(self) -> int:
        return len(self._slotOf)

    def watch(self, sleeper: Sleeper, deadline: float) -> None:
        """
        Call C{sleeper.idleTimerFired()} once C{deadline} (in the clock's
        seconds) has passed, instead of any earlier deadline it had.
        """
        if sleeper in self._slotOf:
            self.forget(sleeper)
        slot = math.ceil(deadline / self.granularity)
        sleepers = self._slots.get(slot)
        if sleepers is None:
            sleepers = self._slots[slot] = set()
            heapq.heappush(self._due, slot)
            if self._call is None or slot < self._callSlot:
                self._schedule(slot)
        sleepers.add(sleeper)
        self._slotOf[sleeper] = slot

    def forget(self, sleeper: Sleeper) -> None:
        """
        Stop watching C{sleeper}, if it is watched.
        """
        slot = self._slotOf.pop(sleeper, None)
        if slot is None:
            return
        sleepers = self._slots.get(slot)
        if sleepers is not None:
            sleepers.discard(sleeper)
        if not self._slotOf:
            self._reset()

    def _schedule(self, slot: int) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._callSlot = slot
        delay = max(0.0, slot * self.granularity - self.clock.seconds())
        self._call = self.clock.callLater(delay, self._fire)

    def _reset(self) -> None:
        """
        Nothing is watched: no slot, no delayed call.
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        self._slots.clear()
        self._due.clear()

    def _fire(self) -> None:
        self._call = None
        now = self.clock.seconds()
        due = self._due
        while due and due[0] * self.granularity <= now:
            slot = heapq.heappop(due)
            for sleeper in self._slots.pop(slot, ()):
                if self._slotOf.get(sleeper) == slot:
                    del self._slotOf[sleeper]
                    # It may watch itself again, in a later slot.
                    sleeper.idleTimerFired()
        if not self._slotOf:
            self._reset()
        elif self._call is None or self._callSlot != due[0]:
            self._schedule(due[0])
