"""
L{ClassicRenderer}: the original tutorial's sentence.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IRenderer
from avatard.model import Avatar
from avatard.request.render import ClassicRenderer


class RendererTests(SynchronousTestCase):
    """
    L{ClassicRenderer}.
    """

    def test_providesTheInterface(self) -> None:
        """
        L{ClassicRenderer} is an L{IRenderer}.
        """
        self.assertTrue(verifyObject(IRenderer, ClassicRenderer()))

    def test_tutorialRendering(self) -> None:
        """
        The original tutorial's sentence, unchanged.
        """
        self.assertEqual(
            ClassicRenderer().render(Avatar("esteban", "Garcia Marquez", "Estebán")),
            "Mr 'Estebán Garcia Marquez' is connected under 'esteban'",
        )
