"""
L{Counters}: every count, and the request counts as STATS and /metrics read
them.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from avatard.counters import RESULTS, Counters, countsByResult


class CountersTests(SynchronousTestCase):
    def test_cacheHitsCountAsTheRequestsTheyAnswered(self) -> None:
        """
        Requests answered from the cache count as C{WHO} requests, found or
        not found, beside those the responder counted itself.
        """
        counters = Counters()
        counters.requests["WHO", "ok"] += 2
        counters.requests["PING", "ok"] += 1
        counters.cacheHits = 5
        counters.cachedNotFound = 2
        self.assertEqual(
            counters.requestCounts(), {("WHO", "ok"): 5, ("WHO", "not-found"): 2, ("PING", "ok"): 1}
        )

    def test_byResultHasEveryResult(self) -> None:
        """
        Requests by result name every result, counted or not.
        """
        counters = Counters()
        counters.requests["-", "bad-request"] += 1
        counters.requests["WHO", "bad-request"] += 2
        byResult = counters.requestsByResult()
        self.assertEqual(list(byResult), list(RESULTS))
        self.assertEqual(byResult["bad-request"], 3)
        self.assertEqual(sum(byResult.values()), 3)
        self.assertEqual(countsByResult({}), dict.fromkeys(RESULTS, 0))

    def test_nothingCountedYet(self) -> None:
        """
        A fresh daemon has counted no request.
        """
        self.assertEqual(Counters().requestCounts(), {})
