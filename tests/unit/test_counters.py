"""
L{avatard.counters}: every count, and the request counts as STATS and
/metrics read them.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from avatard.counters import RESULTS, Counters, countsByResult
from avatard.protocol.factory import WhoFactory
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from tests.helpers import Connection, DictStore


class CountersTests(SynchronousTestCase):
    def test_cacheHitsCountAsTheRequestsTheyAnswered(self) -> None:
        """
        Requests answered from the cache count as the requests they
        answered, beside those the responder counted itself: as C{WHO}
        requests of users found, but for those counted apart.
        """
        counters = Counters()
        counters.requests["WHO", "ok"] += 2
        counters.requests["PING", "ok"] += 1
        counters.cacheHits = 9
        counters.cachedApart["WHO", "not-found"] = 2
        counters.cachedApart["JSON", "ok"] = 3
        counters.cachedApart["JSON", "not-found"] = 1
        self.assertEqual(
            counters.requestCounts(),
            {
                ("WHO", "ok"): 5,
                ("WHO", "not-found"): 2,
                ("JSON", "ok"): 3,
                ("JSON", "not-found"): 1,
                ("PING", "ok"): 1,
            },
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


class RequestCountTests(SynchronousTestCase):
    """
    Requests counted by command and result, through a connection.
    """

    def test_requestCountsByCommand(self) -> None:
        """
        Requests are counted by command and result; requests without a
        known command under C{-}, never under the word sent.
        """
        clock = Clock()
        counters = Counters()
        factory = WhoFactory(Responder(DictStore(), ClassicRenderer(), clock, counters=counters), clock)
        c = Connection(factory)
        c.send(b"WHO yoen\nWHO yoen\nping\nPING x\nFROB\nWHO\nSTATS\nHELP\n")
        self.assertEqual(
            counters.requestCounts(),
            {
                ("WHO", "ok"): 2,
                ("WHO", "bad-request"): 1,
                ("PING", "ok"): 1,
                ("PING", "bad-request"): 1,
                ("-", "bad-request"): 1,
                ("STATS", "ok"): 1,
                ("HELP", "ok"): 1,
            },
        )
