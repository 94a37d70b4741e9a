"""
L{avatard.workers.role}: each worker's share of the group's limits.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from avatard.protocol.limits import Limits
from avatard.workers.role import shareLimits, shareOf


class ShareTests(SynchronousTestCase):
    def test_sharesAddUpToTheTotal(self) -> None:
        """
        The shares of a limit add up to it, the first workers taking one
        more when it does not divide evenly.
        """
        self.assertEqual([shareOf(10, 4, index) for index in range(1, 5)], [3, 3, 2, 2])
        self.assertEqual([shareOf(1024, 2, index) for index in (1, 2)], [512, 512])
        for total in range(1, 50):
            self.assertEqual(sum(shareOf(total + 7, 7, index) for index in range(1, 8)), total + 7)

    def test_noShareIsZero(self) -> None:
        """
        A limit smaller than the group still lets every worker take one
        (0 would mean no limit at all).
        """
        self.assertEqual([shareOf(2, 4, index) for index in range(1, 5)], [1, 1, 1, 1])

    def test_limitsShared(self) -> None:
        """
        C{--max-connections} given for the group and C{--max-per-ip} are
        shared; the default connection limit (each process's open-file
        limit) and no per-address limit (0) are not.
        """
        limits = Limits(maxConnections=100, maxPerAddress=5)
        self.assertEqual(shareLimits(limits, 2, 1, True), Limits(maxConnections=50, maxPerAddress=3))
        self.assertEqual(shareLimits(limits, 2, 2, True), Limits(maxConnections=50, maxPerAddress=2))
        self.assertEqual(shareLimits(limits, 2, 2, False), Limits(maxConnections=100, maxPerAddress=2))
        unlimited = Limits(maxConnections=100, maxPerAddress=0)
        self.assertEqual(shareLimits(unlimited, 3, 3, False), unlimited)
