"""
Avatars, how they are rendered, and the rules for logins and output text.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from zope.interface import implementer

from avatard.interfaces import IRenderer

MAX_LOGIN_LENGTH = 256
"""
The longest login, in characters, that avatard accepts anywhere.
"""


@dataclass(frozen=True, slots=True)
class Avatar:
    """
    One row of the C{users} table.

    @ivar login: the unique login.
    @ivar name: the family name.
    @ivar forname: the given name.
    """

    login: str
    name: str
    forname: str


@implementer(IRenderer)
class ClassicRenderer:
    """
    Renders an avatar exactly as the original C{twisted.enterprise.adbapi}
    tutorial did: C{Mr '<forname> <name>' is connected under '<login>'}.
    """

    def render(self, avatar: Avatar) -> str:
        return f"Mr '{avatar.forname} {avatar.name}' is connected under '{avatar.login}'"


def loginProblem(login: str) -> str | None:
    """
    Check a login against the rules every part of avatard applies.

    A login is 1 to L{MAX_LOGIN_LENGTH} characters with no white space, no
    control or format characters and no C{@} (C{user@host} is a forwarding
    request, which avatard does not serve).

    @return: L{None} if C{login} is acceptable, otherwise a short phrase
        saying what is wrong with it.
    """
    # The common case first, decided without a look at each character.
    if (
        0 < len(login) <= MAX_LOGIN_LENGTH
        and login.isascii()
        and login.isprintable()
        and " " not in login
        and "@" not in login
    ):
        return None
    if not login:
        return "login is empty"
    if len(login) > MAX_LOGIN_LENGTH:
        return f"login is longer than {MAX_LOGIN_LENGTH} characters"
    if "@" in login:
        return "forwarding (user@host) is not supported"
    for character in login:
        if character.isspace():
            return "login contains white space"
        if unicodedata.category(character) in _UNSAFE_CATEGORIES:
            return "login contains a control character"
    return None


# Cc: C0, DEL and C1 controls. Cf: format characters such as bidirectional
# overrides, which can make a line display as something it does not say.
# Zl, Zp: line and paragraph separators, which some terminals break on.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def terminalSafe(text: str) -> str:
    """
    Make text safe to print on a terminal or to write into a log line.

    Every control, format, separator or lone surrogate character is replaced
    by a visible escape (C{\\x1b}, C{\\u202e}); everything else, including
    non-ASCII letters, is kept as it is.  The result never contains CR or LF,
    so it cannot split or forge a reply line.
    """
    if text.isprintable():
        return text
    out = []
    for character in text:
        if unicodedata.category(character) in _UNSAFE_CATEGORIES:
            code = ord(character)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(character)
    return "".join(out)
