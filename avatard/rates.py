"""
Request budgets per client (C{--rate-limit N/SECONDS}): a token bucket for
each client key (L{avatard.networks.clientKey}), in a table of bounded
size.

Each bucket is kept as the theoretical time at which it would be full
again (the generic cell rate algorithm): one float per client, and a
request costs a comparison and an addition, whatever the budget.  A
bucket holds at most C{N} tokens and gains one every C{SECONDS / N}
seconds, so a client may send C{N} requests at once after a pause, and
C{N} per C{SECONDS} on average.
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


AHEAD = 64
"""
The most tokens a connection takes ahead of its requests.
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
    @ivar ahead: tokens a connection takes ahead of its requests
        (L{Budget}): a sixteenth of the budget, at most L{AHEAD}.
    @ivar horizon: how far ahead of now a bucket may be spent (C{seconds},
        with room for rounding): a bucket spent up to now plus the horizon
        is empty.
    """

    def __init__(self, requests: int, seconds: float) -> None:
        self.requests = requests
        self.seconds = seconds
        self.interval = seconds / requests
        self.ahead = min(requests // 16, AHEAD)
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
    One client's tokens, shared by its connections (each through a
    L{Budget}).

    @ivar full: when the bucket would be full again, had nothing been
        taken since: it holds C{(now + horizon - full) / interval} tokens,
        at most the budget.
    """

    __slots__ = ("full",)

    def __init__(self) -> None:
        self.full = 0.0


class Budget:
    """
    What one connection takes from its client's L{Bucket}.

    The connection holds tokens (L{left}) and spends them without asking
    the bucket: the tokens of several requests (those of one read) at
    once, a comparison and a subtraction.  When they run out, it takes
    more (L{spend}), and, from its second time on, a few ahead, up to a
    sixteenth of the budget and at most L{AHEAD}: while it holds them, its client's other connections
    cannot use them; it gives them back when it closes (L{release}).
    A connection therefore never lets its client go past the budget, and
    asks the bucket about once every C{ahead} requests.

    @ivar left: tokens taken from the bucket and not spent yet.
    @ivar ahead: how many tokens it takes ahead of its requests: none the
        first time (most connections make one request, and would only
        give them back), then the rate's.
    """

    __slots__ = ("ahead", "bucket", "left", "rate")

    def __init__(self, bucket: Bucket, rate: Rate) -> None:
        self.bucket = bucket
        self.rate = rate
        self.left = 0
        self.ahead = 0

    def take(self, count: int, now: float) -> int:
        """
        Take up to C{count} tokens from the bucket at time C{now}.

        @return: how many were taken, from C{count} down to 0.
        """
        rate = self.rate
        bucket = self.bucket
        full = bucket.full
        if full < now:
            full = now
        spent = full + count * rate.interval
        if spent - now <= rate.horizon:
            bucket.full = spent
            return count
        granted = max(int((now + rate.horizon - full) / rate.interval), 0)
        bucket.full = full + granted * rate.interval
        return granted

    def spend(self, count: int, now: float) -> bool:
        """
        Spend the tokens of C{count} requests made at time C{now}, taking
        what is missing (and some ahead) from the bucket.

        @return: whether they fell short: then none is spent, and the
            requests are to be admitted one by one (L{admit}), the first
            L{left} of them.
        """
        left = self.left
        if left >= count:
            self.left = left - count
            return False
        rate = self.rate
        wanted = count - left + self.ahead
        self.ahead = rate.ahead
        bucket = self.bucket
        full = bucket.full
        if full < now:
            full = now
        spent = full + wanted * rate.interval
        if spent - now <= rate.horizon:
            # The bucket holds them all, as it usually does: what take()
            # does then, without the call.
            bucket.full = spent
            self.left = left + wanted - count
            return False
        left += self.take(wanted, now)
        if left >= count:
            self.left = left - count
            return False
        self.left = left
        return True

    def admit(self) -> bool:
        """
        @return: whether one more request is within the tokens held; if
            so, it spends one.
        """
        if self.left:
            self.left -= 1
            return True
        return False

    def release(self) -> None:
        """
        Give the tokens held back to the bucket: the connection is closed.
        """
        self.bucket.full -= self.left * self.rate.interval
        self.left = 0


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

    def budget(self, peer: str | None) -> Budget | None:
        """
        @param peer: the IP address of a client that has connected, if it
            has one.
        @return: a new connection's budget, on the bucket of the client's
            key (L{clientKey}: an IPv4 address itself, an IPv6 one its
            /64), which the client's other connections share (L{bucket});
            L{None} for a client without an address.
        """
        if peer is None:
            return None
        # An IPv4 address is its own key: no need to parse it.
        key = peer if ":" not in peer else self._keyOf(peer)
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = self.bucket(key)
        else:
            buckets.move_to_end(key)
        return Budget(bucket, self.rate)

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
        bucket = buckets[key] = Bucket()
        if len(buckets) > self.size:
            buckets.popitem(last=False)
        return bucket
