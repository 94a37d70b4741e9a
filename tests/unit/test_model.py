"""
L{avatard.model}: the rules for logins, and avatars made of rows.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from avatard.model import MAX_LOGIN_LENGTH, Avatar, avatarFromRow, loginProblem


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


class AvatarFromRowTests(SynchronousTestCase):
    """
    L{avatarFromRow}.
    """

    def test_textRowTakenAsItIs(self) -> None:
        """
        A row of text gives an L{Avatar} of the same values, named by field.
        """
        avatar = avatarFromRow(("yoen", "Van der Veld", "Yoen"))
        self.assertIs(type(avatar), Avatar)
        self.assertEqual((avatar.login, avatar.name, avatar.forname), ("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(avatar, Avatar("yoen", "Van der Veld", "Yoen"))

    def test_nullNamesStayNone(self) -> None:
        """
        C{NULL} names are read as L{None}, apart from empty text.
        """
        self.assertEqual(avatarFromRow(("a", None, "")), Avatar("a", None, ""))
        self.assertEqual(avatarFromRow(["a", "", None]), Avatar("a", "", None))

    def test_otherTypesBecomeText(self) -> None:
        """
        Values of a column without a declared type, such as numbers, are
        turned into text, in every field.
        """
        for row, expected in (
            ((42, "n", "f"), Avatar("42", "n", "f")),
            (("a", 7, "f"), Avatar("a", "7", "f")),
            (("a", "n", 1.5), Avatar("a", "n", "1.5")),
        ):
            avatar = avatarFromRow(row)
            self.assertEqual(avatar, expected)
            self.assertEqual([type(value) for value in avatar], [str, str, str])

    def test_rowOfWrongWidthRefused(self) -> None:
        """
        A row of more or fewer than three columns is an error, not a
        malformed L{Avatar}.
        """
        self.assertRaises(ValueError, avatarFromRow, ("a", "n"))
        self.assertRaises(ValueError, avatarFromRow, ("a", "n", "f", "extra"))

    def test_avatarIsImmutable(self) -> None:
        """
        An L{Avatar}'s fields cannot be changed.
        """
        avatar = Avatar("yoen", "Van der Veld", "Yoen")
        self.assertRaises(AttributeError, setattr, avatar, "name", "other")
