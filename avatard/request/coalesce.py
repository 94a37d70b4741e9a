"""
Coalescing: many lookups, few database round trips.

Each lookup through the database's thread pool costs a thread hand-off and
back, far more than an indexed SQLite lookup itself.  L{CoalescingStore}
gathers the lookups made while the database is busy into one C{lookupMany},
and lets concurrent lookups of one login share one answer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.interfaces import IAvatarStore, IImmediateLookup, WouldBlock
from avatard.model import Avatar

DEFAULT_MAX_BATCH = 1000
"""
The most logins sent to the store in one batch.
"""


def _wouldBlock(login: str) -> Avatar | None:
    """
    The immediate lookup of a store that has none: it would block.
    """
    raise WouldBlock()


class _Batch:
    """
    Logins going to the store together, and who waits for each.
    """

    __slots__ = ("live", "request", "waiters")

    def __init__(self) -> None:
        self.waiters: dict[str, list[Deferred[Avatar | None]]] = {}
        self.live = 0
        self.request: Deferred[Mapping[str, Avatar]] | None = None


@implementer(IAvatarStore, IImmediateLookup)
class CoalescingStore:
    """
    An L{IAvatarStore} that batches the lookups it is given.

    At most one batch is at the store at a time.  A lookup made while the
    store is idle goes to it at once, alone; lookups that arrive while a
    batch is at the store wait for the next batch (of at most C{maxBatch}
    logins), which goes as soon as the current one is answered.  So batches
    are large exactly when the store is busy, a lone lookup waits for
    nothing but its own query, and a store that answers at once (as
    L{avatard.stores.sqlite.store.SQLiteStore} reading inline does) answers at once
    through this one too.

    A lookup of a login that is already in the next batch, or in the batch
    at the store, shares that answer.  When every lookup waiting on a batch
    at the store has been cancelled (timed out), the store's own lookup is
    cancelled too, so that a store that can skip abandoned work does.
    """

    def __init__(self, store: IAvatarStore, maxBatch: int = DEFAULT_MAX_BATCH) -> None:
        self.store = store
        self.maxBatch = maxBatch
        # The store's own immediate lookup, when it has one, is this one's:
        # a lookup that missed the cache is spared a call on its way.
        self.lookupNow: Callable[[str], Avatar | None] = (
            store.lookupNow if IImmediateLookup.providedBy(store) else _wouldBlock
        )
        # Batches not sent yet, oldest first, and which of them holds a login.
        self._queue: deque[_Batch] = deque()
        self._queued: dict[str, _Batch] = {}
        self._atStore: _Batch | None = None

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        atStore = self._atStore
        if atStore is not None and login in atStore.waiters:
            return self._wait(atStore, login)
        batch = self._queued.get(login)
        if batch is None:
            if not self._queue or len(self._queue[-1].waiters) >= self.maxBatch:
                self._queue.append(_Batch())
            batch = self._queue[-1]
            self._queued[login] = batch
        d = self._wait(batch, login)
        if atStore is None:
            self._sendNext()
        return d

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        return self.store.lookupMany(logins)

    def _wait(self, batch: _Batch, login: str) -> Deferred[Avatar | None]:
        d: Deferred[Avatar | None] = Deferred(lambda _: self._abandon(batch))
        batch.waiters.setdefault(login, []).append(d)
        batch.live += 1
        return d

    def _abandon(self, batch: _Batch) -> None:
        batch.live -= 1
        if batch.live == 0 and batch.request is not None:
            batch.request.cancel()

    def _sendNext(self) -> None:
        while self._queue:
            batch = self._queue.popleft()
            for login in batch.waiters:
                del self._queued[login]
            if batch.live:
                self._atStore = batch
                batch.request = self.store.lookupMany(list(batch.waiters))
                batch.request.addCallbacks(
                    self._answered, self._failed, callbackArgs=(batch,), errbackArgs=(batch,)
                )
                return

    def _answered(self, found: Mapping[str, Avatar], batch: _Batch) -> None:
        self._finish(batch)
        for login, waiters in batch.waiters.items():
            avatar = found.get(login)
            for d in waiters:
                if not d.called:
                    d.callback(avatar)

    def _failed(self, failure: Failure, batch: _Batch) -> None:
        self._finish(batch)
        for waiters in batch.waiters.values():
            for d in waiters:
                if not d.called:
                    d.errback(failure)

    def _finish(self, batch: _Batch) -> None:
        # Send what gathered meanwhile before answering: an answer may lead
        # to new lookups, which then join the batch after.
        if self._atStore is batch:
            self._atStore = None
            self._sendNext()
