"""
L{avatard.model}: the rules for logins.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from avatard.model import MAX_LOGIN_LENGTH, loginProblem


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
