"""
L{avatard.rates}: budgets of requests (C{--rate-limit}), token buckets on a
fake clock, and the bounded table of them.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from avatard.rates import MAX_CLIENTS, Bucket, Buckets, Rate, RateError


class RateTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """
        C{N/SECONDS} is N requests per SECONDS seconds, whole or not.
        """
        rate = Rate.parse("100/1")
        self.assertEqual((rate.requests, rate.seconds, rate.interval), (100, 1.0, 0.01))
        rate = Rate.parse(" 5/0.5 ")
        self.assertEqual((rate.requests, rate.seconds), (5, 0.5))
        self.assertEqual(str(Rate.parse("600/60")), "600/60 s")

    def test_malformed(self) -> None:
        """
        Anything else is refused with one sentence naming the text.
        """
        for text in ("100", "/1", "100/", "a/1", "1/b", "1.5/1", "", "1/1/1"):
            with self.assertRaises(RateError) as raised:
                Rate.parse(text)
            message = str(raised.exception)
            self.assertIn(repr(text), message)
            self.assertNotIn("\n", message)
        for text in ("0/1", "-1/1", "1/0", "1/-5", "1/inf", "1/nan"):
            with self.assertRaises(RateError) as raised:
                Rate.parse(text)
            self.assertIn("at least 1 request per a positive number of seconds", str(raised.exception))


class TakeTests(SynchronousTestCase):
    """
    L{Bucket.take} and L{Bucket.giveBack}: a token bucket, N requests per
    SECONDS, bursts of up to N.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.rate = Rate(10, 5.0)
        self.bucket = Bucket(self.rate)

    def take(self, count: int) -> int:
        return self.bucket.take(count, self.clock.seconds())

    def test_burstWithinTheBudgetPasses(self) -> None:
        """
        A full bucket gives its whole budget at once, and nothing more.
        """
        self.assertEqual(self.take(10), 10)
        self.assertEqual(self.take(1), 0)

    def test_oneAtATime(self) -> None:
        """
        Taken one by one, the budget is the same.
        """
        self.assertEqual([self.take(1) for _ in range(12)], [1] * 10 + [0, 0])

    def test_partOfARead(self) -> None:
        """
        When fewer tokens are left than asked for, the first ones are
        given.
        """
        self.assertEqual(self.take(7), 7)
        self.assertEqual(self.take(5), 3)
        self.assertEqual(self.take(5), 0)

    def test_refill(self) -> None:
        """
        A token comes back every SECONDS / N seconds, never more than N.
        """
        self.assertEqual(self.take(10), 10)
        self.clock.advance(0.49)
        self.assertEqual(self.take(1), 0)
        self.clock.advance(0.01)
        self.assertEqual(self.take(1), 1)
        self.assertEqual(self.take(1), 0)
        self.clock.advance(1.5)
        self.assertEqual(self.take(5), 3)
        self.clock.advance(3600)
        self.assertEqual(self.take(100), 10)

    def test_refusedRequestsTakeNothing(self) -> None:
        """
        A client that goes on asking past its budget does not push its
        next token further away.
        """
        self.take(10)
        for _ in range(100):
            self.take(3)
        self.clock.advance(0.5)
        self.assertEqual(self.take(3), 1)

    def test_giveBack(self) -> None:
        """
        Tokens given back can be taken again, but a bucket never holds more
        than its budget.
        """
        self.assertEqual(self.take(10), 10)
        self.bucket.giveBack(4)
        self.assertEqual(self.take(10), 4)
        self.clock.advance(3600)
        self.bucket.giveBack(4)
        self.assertEqual(self.take(100), 10)

    def test_connectionsOfOneClientShareItsBucket(self) -> None:
        """
        Whatever takes from one bucket takes from the same tokens.
        """
        self.assertEqual(self.take(6), 6)
        self.assertEqual(self.bucket.take(6, self.clock.seconds()), 4)

    def test_clockGoingBack(self) -> None:
        """
        A time earlier than one already seen gives no tokens, and takes
        none away.
        """
        self.take(10)
        self.assertEqual(self.bucket.take(1, self.clock.seconds() - 100), 0)
        self.clock.advance(0.5)
        self.assertEqual(self.take(1), 1)


class BucketsTests(SynchronousTestCase):
    """
    The table of buckets: bounded, the least recently seen forgotten
    first.
    """

    def test_oneBucketPerKey(self) -> None:
        """
        A key seen again gets its own bucket back; another key another one.
        """
        buckets = Buckets(Rate(1, 1))
        first = buckets.bucket("192.0.2.1")
        self.assertIs(buckets.bucket("192.0.2.1"), first)
        self.assertIsNot(buckets.bucket("192.0.2.2"), first)
        self.assertEqual(len(buckets), 2)

    def test_bound(self) -> None:
        """
        The table never holds more than its size: past it, the least
        recently seen key is forgotten, and a key seen again counts as
        recent.
        """
        buckets = Buckets(Rate(1, 1), size=3)
        a = buckets.bucket("a")
        buckets.bucket("b")
        buckets.bucket("c")
        self.assertIs(buckets.bucket("a"), a)
        buckets.bucket("d")
        self.assertEqual(len(buckets), 3)
        self.assertNotIn("b", buckets)
        self.assertIn("a", buckets)
        buckets.bucket("e")
        self.assertNotIn("c", buckets)
        self.assertEqual([key in buckets for key in "ade"], [True, True, True])
        self.assertIsNot(buckets.bucket("b"), None)
        self.assertNotIn("a", buckets)

    def test_bucketOfAClient(self) -> None:
        """
        L{Buckets.of} gives the bucket of the client's key, which is then
        the most recently seen; none to a client without an address.
        """
        buckets = Buckets(Rate(1, 1), size=2)
        first = buckets.of("192.0.2.1")
        buckets.bucket("192.0.2.2")
        self.assertIs(buckets.of("192.0.2.1"), first)
        buckets.bucket("192.0.2.3")
        self.assertEqual(
            ["192.0.2.1" in buckets, "192.0.2.2" in buckets, "192.0.2.3" in buckets], [True, False, True]
        )
        self.assertIsNone(buckets.of(None))

    def test_bucketByKey(self) -> None:
        """
        IPv6 clients of one /64 share a bucket; IPv4-mapped ones are their
        IPv4 address's.
        """
        buckets = Buckets(Rate(1, 1))
        self.assertIs(buckets.of("2001:db8:1:2::1"), buckets.of("2001:db8:1:2:ffff::9"))
        self.assertIs(buckets.of("::ffff:192.0.2.1"), buckets.of("192.0.2.1"))
        self.assertIsNot(buckets.of("2001:db8:1:3::1"), buckets.of("2001:db8:1:2::1"))
        self.assertIn("2001:db8:1:2::/64", buckets)

    def test_scanFromManyAddresses(self) -> None:
        """
        By default at most L{MAX_CLIENTS} keys are kept, however many are
        seen.
        """
        buckets = Buckets(Rate(1, 1))
        self.assertEqual(buckets.size, 100_000)
        for n in range(MAX_CLIENTS + 500):
            buckets.bucket(f"k{n}")
        self.assertEqual(len(buckets), MAX_CLIENTS)
        self.assertNotIn("k499", buckets)
        self.assertIn("k500", buckets)
