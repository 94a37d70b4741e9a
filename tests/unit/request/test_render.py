"""
L{avatard.request.render}: the original tutorial's sentence, and
C{--template}'s.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IRenderer
from avatard.model import Avatar
from avatard.request.render import (
    DEFAULT_TEMPLATE,
    ClassicRenderer,
    TemplateError,
    TemplateRenderer,
    rendererFor,
)

AVATARS = (
    Avatar("yoen", "Van der Veld", "Yoen"),
    Avatar("esteban", "Garcia Marquez", "Estebán"),
    Avatar("ghost", None, None),
    Avatar("half", "", None),
    Avatar("brace", "{login}", "{0} {{x}} %s"),
)


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


class TemplateRendererTests(SynchronousTestCase):
    """
    L{TemplateRenderer}: C{--template}'s text.
    """

    def test_providesTheInterface(self) -> None:
        """
        L{TemplateRenderer} is an L{IRenderer}.
        """
        self.assertTrue(verifyObject(IRenderer, TemplateRenderer("{login}")))

    def test_defaultTemplateRendersAsTheTutorial(self) -> None:
        """
        The default template renders every avatar, C{NULL} columns
        included, exactly as L{ClassicRenderer} does.
        """
        renderer = TemplateRenderer(DEFAULT_TEMPLATE)
        for avatar in AVATARS:
            self.assertEqual(renderer.render(avatar), ClassicRenderer().render(avatar))

    def test_fieldsAreReplacedByTheirValuesAlone(self) -> None:
        """
        Each field is replaced by its column's value, as it is: braces in
        a value are never read as fields; C{NULL} is empty text; doubled
        braces in the template are literal braces.
        """
        renderer = TemplateRenderer("{{{login}}} {name}/{forname} {login}")
        self.assertEqual(renderer.render(AVATARS[4]), "{brace} {login}/{0} {{x}} %s brace")
        self.assertEqual(renderer.render(AVATARS[2]), "{ghost} / ghost")

    def test_templateWithoutFieldsIsItsText(self) -> None:
        """
        A template may name no field: every user is then that text.
        """
        self.assertEqual(TemplateRenderer("here {{}}").render(AVATARS[0]), "here {}")

    def test_onlyBareFieldsAreAccepted(self) -> None:
        """
        Positional fields, unknown fields, conversions, format
        specifications, attribute and index access, malformed templates,
        empty ones and control characters are refused.
        """
        for template in (
            "{}",
            "{0}",
            "{1}",
            "{email}",
            "{Login}",
            "{name!r}",
            "{name!s}",
            "{name:>20}",
            "{name:{login}}",
            "{login.__class__}",
            "{login.__class__.__init__.__globals__}",
            "{name[0]}",
            "{name",
            "name}",
            "{",
            "{name!}",
            "",
            "a\nb",
            "\u202e{login}",
        ):
            self.assertRaises(TemplateError, TemplateRenderer, template)

    def test_rendererForTheDefaultIsTheClassicOne(self) -> None:
        """
        L{rendererFor} gives the faster L{ClassicRenderer} for the default
        template, a L{TemplateRenderer} for any other.
        """
        self.assertIsInstance(rendererFor(DEFAULT_TEMPLATE), ClassicRenderer)
        self.assertIsInstance(rendererFor("{login}"), TemplateRenderer)
        self.assertRaises(TemplateError, rendererFor, "{x}")
