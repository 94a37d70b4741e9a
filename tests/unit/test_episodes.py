"""
L{Episode}: failures reported once per episode.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from avatard.episodes import Episode


class EpisodeTests(SynchronousTestCase):
    def test_firstFailureReportedThenCounted(self) -> None:
        """
        The first failure of an episode is to be reported, the others only
        counted; the success that ends it reports how many there were.
        """
        episode = Episode()
        self.assertEqual([episode.failure() for _ in range(4)], [True, False, False, False])
        self.assertTrue(episode.failing)
        self.assertEqual(episode.success(), 4)
        self.assertFalse(episode.failing)

    def test_successWithoutFailureReportsNothing(self) -> None:
        """
        A success outside an episode has nothing to report.
        """
        episode = Episode()
        self.assertIsNone(episode.success())
        episode.failure()
        episode.success()
        self.assertIsNone(episode.success())

    def test_eachEpisodeIsReported(self) -> None:
        """
        Without a quiet time, every episode is reported, with its own count.
        """
        episode = Episode()
        episode.failure()
        self.assertEqual(episode.success(), 1)
        self.assertTrue(episode.failure())
        episode.failure()
        self.assertEqual(episode.success(), 2)

    def test_quietTime(self) -> None:
        """
        An episode that starts within the quiet time of the last report is
        only counted, and reported by its first failure after that time;
        an episode that ends unreported reports nothing, and its failures
        count in the next report.
        """
        clock = Clock()
        episode = Episode(clock, quiet=10)
        self.assertTrue(episode.failure())
        self.assertEqual(episode.success(), 1)
        clock.advance(1)
        self.assertFalse(episode.failure())
        self.assertIsNone(episode.success())
        clock.advance(1)
        self.assertFalse(episode.failure())
        clock.advance(8)
        self.assertTrue(episode.failure())
        self.assertEqual(episode.failures, 3)
        self.assertEqual(episode.success(), 3)

    def test_anotherCauseIsReportedAgain(self) -> None:
        """
        A failure with another cause than the one reported is reported too;
        the same cause again is not.
        """
        episode = Episode()
        self.assertTrue(episode.failure("refused"))
        self.assertFalse(episode.failure("refused"))
        self.assertTrue(episode.failure("timeout"))
        self.assertFalse(episode.failure("timeout"))
        self.assertEqual(episode.success(), 4)
