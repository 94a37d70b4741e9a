"""
Request budgets per client (C{--rate-limit N/SECONDS}): a token bucket for
each client key (L{avatard.networks.clientKey}), in a table of bounded
size.

Each bucket is kept as the theoretical time at which it would be full
again (the generic cell rate algorithm): one float per client, and
taking the tokens of any number of requests costs a comparison and an
addition, whatever the budget.  A bucket holds at most C{N} tokens and
gains one every C{SECONDS / N} seconds, so a client may send C{N}
requests at once after a pause, and C{N} per C{SECONDS} on average.
Connections take from their client's bucket directly, the tokens of one
read at a time (L{Bucket.take}), and hold none between reads.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

from avatard.networks import clientKey

KEYS_REMEMBERED = 4096
"""
IPv6 client addresses whose key (L{clientKey}) is remembered, the least
recently used forgotten first: a client that connects again is not parsed
again.
"""

MAX_CLIENTS = 100_000
"""
Clients whose buckets one process keeps; the least recently seen is
forgotten first, so that a scan from many addresses cannot grow memory
without bound.
"""


class RateError(ValueError):
    """
    A budget cannot be read.  C{str()} of it is one sentence for the
    operator, naming the text.
    """


class Rate:
    """
    A budget: C{requests} per C{seconds}.

    @ivar interval: seconds in which one token comes back.
    @ivar horizon: how far ahead of now a bucket may be spent (C{seconds},
        with room for rounding): a bucket spent up to now plus the horizon
        is empty.
    """

    def __init__(self, requests: int, seconds: float) -> None:
        self.requests = requests
        self.seconds = seconds
        self.interval = seconds / requests
        # A full budget taken at once lands exactly on the horizon; the
        # rounding of the additions must not refuse its last request.
        self.horizon = seconds + self.interval / 1024

    @classmethod
    def parse(cls, text: str) -> Rate:
        """
        Read C{N/SECONDS}: a whole number of requests, at least 1, per a
        positive number of seconds (C{100/1}, C{600/60}, C{5/0.5}).

        @raise RateError: for anything else.
        """
        requests, slash, seconds = text.strip().partition("/")
        try:
            if not slash:
                raise ValueError(text)
            count = int(requests)
            period = float(seconds)
        except ValueError:
            raise RateError(
                f"{text!r} is not N/SECONDS, a number of requests per a number of seconds "
                "(as 100/1 or 600/60)"
            ) from None
        if count < 1 or not 0 < period < float("inf"):
            raise RateError(f"{text!r} must allow at least 1 request per a positive number of seconds")
        return cls(count, period)

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g} s"


class Bucket:
    """
    One client's tokens under C{rate}, which all its connections take from
    (L{take}).

    @ivar full: when the bucket would be full again, had nothing been
        taken since: it holds C{(now + horizon - full) / interval} tokens,
        at most the budget.
    """

    __slots__ = ("full", "rate")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.full = 0.0

    def take(self, count: int, now: float) -> int:
        """
        Take up to C{count} tokens at time C{now}: the first ones, when the
        bucket holds fewer.

        @return: how many were taken, from C{count} down to 0.
        """
        rate = self.rate
        interval = rate.interval
        full = self.full
        if full < now:
            full = now
        spent = full + count * interval
        if spent - now <= rate.horizon:
            self.full = spent
            return count
        granted = max(int((now + rate.horizon - full) / interval), 0)
        self.full = full + granted * interval
        return granted

    def giveBack(self, count: int) -> None:
        """
        Give back C{count} tokens taken and not used (the requests they were
        taken for were not answered).
        """
        self.full -= count * self.rate.interval


class Buckets:
    """
    The buckets of at most C{size} clients, by client key: the least
    recently seen forgotten first, in constant time per lookup.
    """

    def __init__(self, rate: Rate, size: int = MAX_CLIENTS) -> None:
        self.rate = rate
        self.size = size
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._keyOf = lru_cache(KEYS_REMEMBERED)(clientKey)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def of(self, peer: str | None) -> Bucket | None:
        """
        @param peer: the IP address of a client that has connected, if it
            has one.
        @return: the bucket of the client's key (L{clientKey}: an IPv4
            address itself, an IPv6 one its /64), which all its
            connections take from, now the most recently seen; L{None} for
            a client without an address.
        """
        if peer is None:
            return None
        # An IPv4 address is its own key: no need to parse it.
        return self.bucket(peer if ":" not in peer else self._keyOf(peer))

    def bucket(self, key: str) -> Bucket:
        """
        @return: the bucket of client C{key}, a new full one for a client
            not seen (or forgotten); C{key} is now the most recently seen.
        """
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        bucket = buckets[key] = Bucket(self.rate)
        if len(buckets) > self.size:
            buckets.popitem(last=False)
        return bucket
