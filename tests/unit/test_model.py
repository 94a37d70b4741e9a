"""
Avatars, rendering, and the rules for logins and output text.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.interfaces import IRenderer
from avatard.model import MAX_LOGIN_LENGTH, Avatar, loginProblem
from avatard.request.render import ClassicRenderer
from avatard.text import terminalSafe


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


class LoginTests(SynchronousTestCase):
    """
    L{loginProblem}.
    """

    def test_ordinaryLogins(self) -> None:
        """
        Letters, digits, punctuation and non-ASCII letters are fine.
        """
        for login in ("yoen", "o'brien", "a%b_c*d", "jürgen", "x" * MAX_LOGIN_LENGTH, "a.b-c+d"):
            self.assertIsNone(loginProblem(login), login)

    def test_refusedLogins(self) -> None:
        """
        Empty, over-long, forwarding, white space and control or format
        characters are refused, each with its reason.
        """
        cases = {
            "": "login is empty",
            "x" * (MAX_LOGIN_LENGTH + 1): "longer than 256",
            "yoen@host": "forwarding",
            "yo en": "white space",
            "yo\u00a0en": "white space",
            "yo\x00en": "control character",
            "yo\x7fen": "control character",
            "yo\x85en": "white space",
            "yo\x9ben": "control character",
            "yo\u202een": "control character",
            "yo\u2028en": "white space",
        }
        for login, reason in cases.items():
            problem = loginProblem(login)
            assert problem is not None, repr(login)
            self.assertIn(reason, problem)


class TerminalSafeTests(SynchronousTestCase):
    """
    L{terminalSafe}.
    """

    def test_printableTextIsUnchanged(self) -> None:
        """
        Printable text, accents and quotes included, passes unchanged.
        """
        for text in ("Mr 'Estebán Garcia Marquez'", "Al Ghâlib", "日本語", "a\u00a0b"):
            self.assertEqual(terminalSafe(text), text)

    def test_controlsAreEscaped(self) -> None:
        """
        C0, DEL, C1, bidirectional overrides and line separators become
        visible escapes; CR and LF never survive.
        """
        self.assertEqual(
            terminalSafe("a\r\nb\x1b[31m\x7f\x9b\u202e\u2028\ud800"),
            "a\\x0d\\x0ab\\x1b[31m\\x7f\\x9b\\u202e\\u2028\\ud800",
        )
