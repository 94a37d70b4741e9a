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

    def test_nullNamesRenderAsEmptyText(self) -> None:
        """
        A C{NULL} name or forname (L{None}) renders as empty text, as the
        tutorial's own rendering of a row read as empty text did.
        """
        self.assertEqual(
            ClassicRenderer().render(Avatar("ghost", None, None)), "Mr ' ' is connected under 'ghost'"
        )
        self.assertEqual(
            ClassicRenderer().render(Avatar("half", "Veld", None)), "Mr ' Veld' is connected under 'half'"
        )
